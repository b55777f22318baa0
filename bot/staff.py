"""Staff accounts: who may use the console and the `/admin` routes, and in which role (keys in `bot.keys`).

Kept in Redis so every worker (and `frontdesk staff ...` run on any machine) sees the same
accounts at once. A member's token is 32 random bytes shown once when it is issued (when the
member is added, or with `frontdesk staff token NAME`); Redis holds only its SHA-256. A fast
unsalted hash is enough here because the tokens are random, not passwords a person chose:
nobody can guess one from a list, and a leaked copy of Redis still gives no usable token.

    {p:staff}:members          name -> {"role", "token_sha256", "created_at", "expires_at"}
    {p:staff}:token:SHA256     name, with a time to live: the token's lifetime (FRONTDESK_STAFF_TOKEN_DAYS)

A token works while its key exists and the member still holds that very token, so it stops
working when its time runs out (Redis drops the key), when it is revoked (signing out of the
console deletes the key), when a new one is issued, and when the member is removed. Every key
is under one hash tag, so each change is one Lua step even on a cluster.

Tokens issued before tokens expired sit in the old index `{p:staff}:tokens` (hash sha -> name);
the first use of one moves it to its own key with a full lifetime from then on.
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

DAY_S = 86_400
# Names show up in transcripts ("claimed by NAME"), in the audit log and in the console.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
# The bootstrap admin (FRONTDESK_ADMIN_TOKEN) and the command line act under these names in the audit log;
# a member named so would be indistinguishable from them.
RESERVED_NAMES = frozenset({"admin", "cli"})

# KEYS: members, the new token's key. ARGV: name, member JSON, lifetime in ms.
_ADD = """
if redis.call('hexists', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[3])
return 1
"""

# KEYS: members, the new token's key, the old token's key, the old index. ARGV: name, member JSON, ms, old sha.
# The old token is the one read just before; if another change came in between, its key is left behind,
# harmless: a token key only works while the member holds that token.
_REISSUE = """
if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('del', KEYS[3])
redis.call('hdel', KEYS[4], ARGV[4])
return 1
"""

# KEYS: members, the token's key, the old index. ARGV: name, sha of the member's token.
_REMOVE = """
if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('del', KEYS[2])
redis.call('hdel', KEYS[3], ARGV[2])
redis.call('hdel', KEYS[1], ARGV[1])
return 1
"""

# KEYS: the token's key, the old index, members. ARGV: sha, lifetime in ms, when it ends. A token from before
# tokens expired moves to its own key on first use, and its lifetime starts then.
_UPGRADE = """
local name = redis.call('hget', KEYS[2], ARGV[1])
if not name then return false end
redis.call('set', KEYS[1], name, 'PX', ARGV[2])
redis.call('hdel', KEYS[2], ARGV[1])
local raw = redis.call('hget', KEYS[3], name)
local ok, member = pcall(cjson.decode, raw or '')
if ok and type(member) == 'table' and member['token_sha256'] == ARGV[1] then
  member['expires_at'] = tonumber(ARGV[3])
  redis.call('hset', KEYS[3], name, cjson.encode(member))
end
return name
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
    expires_at: float = 0.0  # when the member's current token stops working; 0 when none was issued here

    def to_dict(self) -> dict:
        return {"name": self.name, "role": str(self.role), "created_at": self.created_at,
                "token_expires_at": self.expires_at or None}


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


def check_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise StaffError(f"role {role!r}: one of {', '.join(r.value for r in Role)}") from None


class StaffDirectory:
    def __init__(self, client: redis.Redis, keys: Keys, *, token_days: float = 30.0):
        self.redis = client
        self.keys = keys
        self.token_s = token_days * DAY_S  # FRONTDESK_STAFF_TOKEN_DAYS
        self._add = client.register_script(_ADD)
        self._reissue = client.register_script(_REISSUE)
        self._remove = client.register_script(_REMOVE)
        self._upgrade = client.register_script(_UPGRADE)

    @property
    def _members(self) -> str:
        return self.keys.staff("members")

    @property
    def _old_index(self) -> str:
        return self.keys.staff("tokens")

    def _token_key(self, digest: str) -> str:
        return self.keys.staff(f"token:{digest}")

    def _new_token(self, name: str, role: Role, created_at: float) -> tuple[Member, str, str, str]:
        """A fresh token for `name`: (member, token, its hash, the member's JSON as stored)."""
        token = secrets.token_urlsafe(32)
        member = Member(name, role, created_at, round(time.time() + self.token_s, 3))
        digest = token_hash(token)
        stored = json.dumps({"role": str(role), "token_sha256": digest, "created_at": member.created_at,
                             "expires_at": member.expires_at})
        return member, token, digest, stored

    @property
    def _lifetime_ms(self) -> int:
        return max(1, int(self.token_s * 1000))

    def add(self, name: str, role: Role | str) -> tuple[Member, str]:
        """Create a member; returns it with its token, the only time the token exists outside the caller."""
        name, role = check_name(name), check_role(role)
        member, token, digest, stored = self._new_token(name, role, round(time.time(), 3))
        if not self._add(keys=[self._members, self._token_key(digest)], args=[name, stored, self._lifetime_ms]):
            raise StaffError(f"a staff member named {name!r} already exists")
        return member, token

    def reissue(self, name: str) -> tuple[Member, str]:
        """A new token for an existing member (after theirs expired or they signed out); the old one stops working."""
        raw = self.redis.hget(self._members, name)
        if raw is None:
            raise StaffError(f"no staff member named {name!r}")
        old = json.loads(raw)
        current = _member(name, raw)
        member, token, digest, stored = self._new_token(name, current.role, current.created_at)
        old_digest = str(old.get("token_sha256") or "")
        if not self._reissue(keys=[self._members, self._token_key(digest), self._token_key(old_digest),
                                   self._old_index], args=[name, stored, self._lifetime_ms, old_digest]):
            raise StaffError(f"no staff member named {name!r}")
        return member, token

    def revoke(self, token: str) -> bool:
        """Sign a token out: it stops working on the next request, on every worker. False if it did not work."""
        digest = token_hash(token)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._token_key(digest))
        pipe.hdel(self._old_index, digest)
        return any(pipe.execute())

    def remove(self, name: str) -> None:
        """Remove a member: their token stops working on the next request, on every worker."""
        raw = self.redis.hget(self._members, name)
        digest = str(json.loads(raw).get("token_sha256") or "") if raw is not None else ""
        if not self._remove(keys=[self._members, self._token_key(digest), self._old_index], args=[name, digest]):
            raise StaffError(f"no staff member named {name!r}")

    def get(self, name: str) -> Member | None:
        raw = self.redis.hget(self._members, name)
        return None if raw is None else _member(name, raw)

    def list(self) -> list[Member]:
        """Every member, by name."""
        raw = self.redis.hgetall(self._members)
        return sorted((_member(_text(k), v) for k, v in raw.items()), key=lambda m: m.name)

    def authenticate(self, token: str) -> Member | None:
        """The member this token belongs to, or None (unknown, expired, signed out, replaced or removed)."""
        if not token:
            return None
        digest = token_hash(token)
        key = self._token_key(digest)
        name = self.redis.get(key)
        if name is None:
            name = self._upgrade(keys=[key, self._old_index, self._members],
                                 args=[digest, self._lifetime_ms, round(time.time() + self.token_s, 3)])
            if name is None:
                return None
        raw = self.redis.hget(self._members, name)
        if raw is None:
            return None
        stored = json.loads(raw)
        # The member must still hold this very token (not one replaced by a newer one, or a stale key).
        if not secrets.compare_digest(str(stored.get("token_sha256") or ""), digest):
            return None
        return _member(_text(name), raw)


def _member(name: str, raw) -> Member:
    data = json.loads(raw)
    return Member(name, Role(data["role"]), float(data.get("created_at", 0.0)), float(data.get("expires_at") or 0.0))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
