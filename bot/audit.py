"""The audit log: who did what to which thing, and when, for every admin and staff action.

Entries are `{"at", "actor", "action", "target"}`, read newest first. They name the acting account
and the object acted on, never message content: an audit log is read by more people, and kept
longer, than the conversations it is about.

Retention is by time, not by count (`FRONTDESK_AUDIT_DAYS`): the log is a sorted set scored by
the entry's time (`{p:audit}:entries`, see `bot.keys`), and whatever is older than the window is
dropped on every write and never read. A capped list let anyone who can write entries (an agent
editing saved replies, say) push the oldest ones out by writing many; now an entry stays for its
full window however many come after it.

Some reads are audited although they change nothing (a transcript opened in the console): the
console polls what it shows, so such a read is recorded once per actor and target per window
(`record_once`), not on every poll.

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
from collections.abc import Callable

import redis

from bot.keys import Keys

log = logging.getLogger(__name__)

DAY_S = 86_400
# Before retention by time the log was a list capped at 10,000 entries (`{p:audit}:log`). Its entries move
# into the sorted set the first time a process touches the log, oldest first, so nothing is lost on upgrade.
# Members are "ORDER JSON": ORDER keeps entries of the same millisecond in the order they were written.
_MIGRATE = """
if redis.call('type', KEYS[1])['ok'] ~= 'list' then return 0 end
local items = redis.call('lrange', KEYS[1], 0, -1)
local n = #items
for i, item in ipairs(items) do
  local ok, entry = pcall(cjson.decode, item)
  local at = (ok and type(entry) == 'table' and tonumber(entry['at'])) or 0
  redis.call('zadd', KEYS[2], at, string.format('%020d', n - i) .. ' ' .. item)
end
redis.call('del', KEYS[1])
return n
"""


def staff_actor(channel: str, user_id: str, name: str | None) -> str:
    """Who acted on a chat platform: the display name to read, the platform's id to trust ("Sam (slack:U1)")."""
    return f"{name} ({channel}:{user_id})" if name and name != user_id else f"{channel}:{user_id}"


class AuditLog:
    def __init__(self, client: redis.Redis, keys: Keys, *, days: float = 365,
                 clock: Callable[[], float] = time.time):
        self.redis = client
        self.keys = keys
        self.window_s = days * DAY_S
        self.clock = clock
        self._key: bytes | None = None
        self._migrated = False
        self._migrate = client.register_script(_MIGRATE)

    @property
    def _entries(self) -> str:
        return self.keys.audit("entries")

    def record(self, actor: str, action: str, target: str = "") -> dict:
        """Append one entry. Raises on a Redis error: an action that cannot be audited should say so."""
        self._upgrade()
        now = self.clock()
        entry = {"at": round(now, 3), "actor": actor, "action": action, "target": target}
        member = f"{time.time_ns():020d}{secrets.token_hex(2)} {json.dumps(entry, ensure_ascii=False)}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(self._entries, {member: entry["at"]})
        pipe.zremrangebyscore(self._entries, "-inf", f"({now - self.window_s}")  # out of the window: gone
        pipe.execute()
        return entry

    def record_once(self, actor: str, action: str, target: str = "", *, per_s: float) -> dict | None:
        """`record`, unless the same actor recorded the same action on the same target in the last `per_s` seconds.

        For audited reads a page repeats (the console re-reads an open transcript every few seconds):
        one entry says who looked, and when they started looking, without one per poll.
        """
        digest = hashlib.sha256(f"{actor}\0{action}\0{target}".encode()).hexdigest()[:32]
        if not self.redis.set(self.keys.audit(f"once:{digest}"), 1, nx=True, px=max(1, int(per_s * 1000))):
            return None
        return self.record(actor, action, target)

    def entries(self, limit: int = 200, offset: int = 0) -> list[dict]:
        """Newest first, only those inside the retention window."""
        self._upgrade()
        raw = self.redis.zrevrangebyscore(self._entries, "+inf", self.clock() - self.window_s,
                                          start=offset, num=limit)
        return [json.loads(_text(item).split(" ", 1)[1]) for item in raw]

    def _upgrade(self) -> None:
        if not self._migrated:
            self._migrate(keys=[self.keys.audit("log"), self._entries])
            self._migrated = True

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


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
