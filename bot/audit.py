"""The audit log: who did what to which thing, and when, for every admin and staff action.

Entries are `{"at", "actor", "action", "target"}` on a capped Redis list, newest first
(`{p:audit}:log`, see `bot.keys`). They name the acting account and the object acted on,
never message content: an audit log is read by more people, and kept longer, than the
conversations it is about.

A customer's id is personal data, and the log outlives an erasure of that customer's data,
so a customer is named by a pseudonym (`pseudonym`): a keyed hash of "channel:user_id".
Someone with the server's Redis can still tell whether two entries are about the same
customer (or compute the pseudonym of a given id), but the log alone does not say who it was,
and unlike a plain hash, short numeric ids (a Telegram user id) cannot be found by trying them all.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time

import redis

from bot.keys import Keys

log = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, client: redis.Redis, keys: Keys, *, cap: int = 10_000):
        self.redis = client
        self.keys = keys
        self.cap = cap
        self._key: bytes | None = None

    def record(self, actor: str, action: str, target: str = "") -> dict:
        """Append one entry. Raises on a Redis error: an action that cannot be audited should say so."""
        entry = {"at": round(time.time(), 3), "actor": actor, "action": action, "target": target}
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(self.keys.audit("log"), json.dumps(entry, ensure_ascii=False))
        pipe.ltrim(self.keys.audit("log"), 0, self.cap - 1)
        pipe.execute()
        return entry

    def entries(self, limit: int = 200, offset: int = 0) -> list[dict]:
        """Newest first."""
        raw = self.redis.lrange(self.keys.audit("log"), offset, offset + limit - 1)
        return [json.loads(item) for item in raw]

    def pseudonym(self, channel: str, user_id: str) -> str:
        """A stable stand-in for a customer in audit targets: `channel:` plus 16 hex digits of an HMAC."""
        digest = hmac.new(self._secret(), f"{channel}:{user_id}".encode(), hashlib.sha256).hexdigest()
        return f"{channel}:{digest[:16]}"

    def _secret(self) -> bytes:
        """The deployment's pseudonym key: made once (SET NX) by whichever process needs it first."""
        if self._key is None:
            key = self.keys.audit("key")
            self.redis.set(key, secrets.token_hex(32), nx=True)
            value = self.redis.get(key)
            self._key = value if isinstance(value, bytes) else str(value).encode()
        return self._key
