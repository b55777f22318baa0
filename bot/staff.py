"""Staff accounts: who may use the console and the `/admin` routes, and in which role (keys in `bot.keys`).

Kept in Redis so every worker (and `frontdesk staff ...` run on any machine) sees the same
accounts at once. A member's token is 32 random bytes shown once when the member is added;
Redis holds only its SHA-256. A fast unsalted hash is enough here because the tokens are
random, not passwords a person chose: nobody can guess one from a list, and a leaked copy
of Redis still gives no usable token.

    {p:staff}:members   name -> {"role", "token_sha256", "created_at"}
    {p:staff}:tokens    token_sha256 -> name

Both under one hash tag, so adding or removing a member changes both in one Lua step.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

import redis

from bot.keys import Keys

# Names show up in transcripts ("claimed by NAME"), in the audit log and in the console.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
# The bootstrap admin (FRONTDESK_ADMIN_TOKEN) and the command line act under these names in the audit log;
# a member named so would be indistinguishable from them.
RESERVED_NAMES = frozenset({"admin", "cli"})

_ADD = """
if redis.call('hexists', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
redis.call('hset', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

_REMOVE = """
local raw = redis.call('hget', KEYS[1], ARGV[1])
if not raw then return 0 end
local ok, member = pcall(cjson.decode, raw)
if ok and type(member) == 'table' and member['token_sha256'] then
  redis.call('hdel', KEYS[2], member['token_sha256'])
end
redis.call('hdel', KEYS[1], ARGV[1])
return 1
"""


class Role(StrEnum):
    AGENT = "agent"  # works the escalation queue, the review inbox, stats and the console
    ADMIN = "admin"  # everything under /admin


class StaffError(ValueError):
    """A bad name, a name taken, or no such member."""


@dataclass(frozen=True)
class Member:
    name: str
    role: Role
    created_at: float = 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "role": str(self.role), "created_at": self.created_at}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    """The name as stored, or `StaffError` saying what a name may be."""
    if not NAME_RE.fullmatch(name):
        raise StaffError(f"staff name {name!r}: 1-64 characters, letters, digits, space, '.', '_', '@' or '-', "
                         "starting with a letter or digit")
    if name.lower() in RESERVED_NAMES:
        raise StaffError(f"staff name {name!r} is reserved (the audit log uses it for the admin token and the CLI)")
    return name


class StaffDirectory:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis = client
        self.keys = keys
        self._add = client.register_script(_ADD)
        self._remove = client.register_script(_REMOVE)

    @property
    def _members(self) -> str:
        return self.keys.staff("members")

    @property
    def _tokens(self) -> str:
        return self.keys.staff("tokens")

    def add(self, name: str, role: Role | str) -> tuple[Member, str]:
        """Create a member; returns it with its token, the only time the token exists outside the caller."""
        name = check_name(name)
        try:
            role = Role(role)
        except ValueError:
            raise StaffError(f"role {role!r}: one of {', '.join(r.value for r in Role)}") from None
        token = secrets.token_urlsafe(32)
        member = Member(name, role, round(time.time(), 3))
        digest = token_hash(token)
        stored = json.dumps({"role": str(role), "token_sha256": digest, "created_at": member.created_at})
        if not self._add(keys=[self._members, self._tokens], args=[name, stored, digest]):
            raise StaffError(f"a staff member named {name!r} already exists")
        return member, token

    def remove(self, name: str) -> None:
        """Remove a member: their token stops working on the next request, on every worker."""
        if not self._remove(keys=[self._members, self._tokens], args=[name]):
            raise StaffError(f"no staff member named {name!r}")

    def get(self, name: str) -> Member | None:
        raw = self.redis.hget(self._members, name)
        return None if raw is None else _member(name, raw)

    def list(self) -> list[Member]:
        """Every member, by name."""
        raw = self.redis.hgetall(self._members)
        return sorted((_member(_text(k), v) for k, v in raw.items()), key=lambda m: m.name)

    def authenticate(self, token: str) -> Member | None:
        """The member this token belongs to, or None."""
        if not token:
            return None
        digest = token_hash(token)
        name = self.redis.hget(self._tokens, digest)
        if name is None:
            return None
        raw = self.redis.hget(self._members, name)
        if raw is None:
            return None
        stored = json.loads(raw)
        # The member must still hold this very token (not a stale index entry left by a half-finished change).
        if not secrets.compare_digest(stored.get("token_sha256", ""), digest):
            return None
        return _member(_text(name), raw)


def _member(name: str, raw) -> Member:
    data = json.loads(raw)
    return Member(name, Role(data["role"]), float(data.get("created_at", 0.0)))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
