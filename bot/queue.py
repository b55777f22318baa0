"""The staff queue of escalated conversations, in Redis (one hash tag, so one cluster slot; see bot.keys).

    {p:esc}:ID          hash: id, conversation_id, channel, user_id, reason, status, agent, created_at, ...
    {p:esc}:all         sorted set of ids by creation time (newest first when listed)
    {p:esc}:open        sorted set of unclaimed ids by the time they were last announced
    {p:esc}:link:PLATFORM:REF   escalation id for a platform's handle on it (a Slack thread, ...)

Status goes open -> claimed -> resolved. A claim succeeds only on an open escalation, so
two staff members clicking Claim at once cannot both get it.
"""

from __future__ import annotations

import time
import uuid

import redis

from bot.keys import Keys

_CLAIM = """
if redis.call('hget', KEYS[1], 'status') ~= 'open' then return 0 end
redis.call('hset', KEYS[1], 'status', 'claimed', 'agent', ARGV[1], 'claimed_at', ARGV[2])
redis.call('zrem', KEYS[2], ARGV[3])
return 1
"""


# Create unless it exists (a message handled twice opens one escalation). KEYS: record, all, open.
# ARGV: id, created at, then the record's field/value pairs. 1 when created.
_CREATE = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
redis.call('hset', KEYS[1], unpack(ARGV, 3))
redis.call('zadd', KEYS[2], ARGV[2], ARGV[1])
redis.call('zadd', KEYS[3], ARGV[2], ARGV[1])
return 1
"""


class EscalationError(ValueError):
    """An action that does not fit the escalation's state (unknown id, already claimed, ...)."""


class EscalationQueue:
    def __init__(self, client: redis.Redis, keys: Keys, *, retention_s: int = 30 * 86_400):
        self.redis = client
        self.keys = keys
        # A resolved record names a customer: it expires this long after resolution
        # (FRONTDESK_ESCALATION_RETENTION_DAYS), and `list` drops its id from the index once it is gone.
        self.retention_s = retention_s
        self._claim = client.register_script(_CLAIM)
        self._create = client.register_script(_CREATE)

    def _key(self, escalation_id: str) -> str:
        return self.keys.esc(escalation_id)

    @property
    def _all(self) -> str:
        return self.keys.esc("all")

    @property
    def _open(self) -> str:
        return self.keys.esc("open")

    def create(self, *, conversation_id: str, channel: str, user_id: str, reason: str, uid: str = "") -> dict:
        """Open an escalation; with the `uid` of the message that caused it, at most one per message.

        The id is then derived from the uid, and creating it again (the message handled again
        after its worker died) returns the record made the first time instead of a second one.
        """
        escalation_id = uid[:16] if uid else uuid.uuid4().hex[:12]
        now = time.time()
        record = {"id": escalation_id, "conversation_id": conversation_id, "channel": channel, "user_id": user_id,
                  "reason": reason, "status": "open", "created_at": now, "announced_at": now}
        fields = [x for kv in record.items() for x in (kv[0], str(kv[1]))]
        if not self._create(keys=[self._key(escalation_id), self._all, self._open], args=[escalation_id, now, *fields]):
            return self.get(escalation_id)
        return record

    def get(self, escalation_id: str) -> dict:
        raw = self.redis.hgetall(self._key(escalation_id))
        if not raw:
            raise EscalationError(f"no escalation {escalation_id!r}")
        record = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                  for k, v in raw.items()}
        for field in ("created_at", "announced_at", "claimed_at", "resolved_at"):
            if field in record:
                record[field] = float(record[field])
        return record

    def list(self, status: str | None = None, limit: int = 100) -> list[dict]:
        """Newest first."""
        ids = self.redis.zrevrange(self._all, 0, -1)
        out = []
        for raw_id in ids:
            try:
                record = self.get(raw_id.decode() if isinstance(raw_id, bytes) else raw_id)
            except EscalationError:  # expired after its retention (or erased): the index forgets it too
                self.redis.zrem(self._all, raw_id)
                continue
            if status is None or record["status"] == status:
                out.append(record)
            if len(out) >= limit:
                break
        return out

    def claim(self, escalation_id: str, agent: str) -> dict:
        record = self.get(escalation_id)
        if not self._claim(keys=[self._key(escalation_id), self._open], args=[agent, time.time(), escalation_id]):
            raise EscalationError(f"escalation {escalation_id} is {record['status']}"
                                  + (f" by {record['agent']}" if record.get("agent") else ""))
        return self.get(escalation_id)

    def resolve(self, escalation_id: str, agent: str) -> dict:
        record = self.get(escalation_id)
        if record["status"] == "resolved":
            raise EscalationError(f"escalation {escalation_id} is already resolved")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(escalation_id), mapping={"status": "resolved", "resolved_by": agent,
                                                     "resolved_at": str(time.time())})
        pipe.zrem(self._open, escalation_id)
        pipe.expire(self._key(escalation_id), self.retention_s)
        for field, ref in record.items():
            if field.startswith("link:"):
                pipe.expire(self.keys.esc("link", field.partition(":")[2], ref), self.retention_s)
        pipe.execute()
        return self.get(escalation_id)

    def link(self, escalation_id: str, platform: str, ref: str) -> None:
        """Remember a platform's handle on this escalation (say, the Slack thread staff discuss it in)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(escalation_id), f"link:{platform}", ref)
        pipe.set(self.keys.esc("link", platform, ref), escalation_id, ex=30 * 86_400)
        pipe.execute()

    def find_by_link(self, platform: str, ref: str) -> dict | None:
        raw = self.redis.get(self.keys.esc("link", platform, ref))
        if raw is None:
            return None
        try:
            return self.get(raw.decode() if isinstance(raw, bytes) else raw)
        except EscalationError:
            return None

    def due_for_reannounce(self, older_than: float) -> list[dict]:
        """Open escalations last announced more than `older_than` seconds ago; marks them announced now."""
        now = time.time()
        due = []
        for raw_id in self.redis.zrangebyscore(self._open, 0, now - older_than):
            escalation_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            # Only one process re-announces: the one whose ZADD XX CH moves the score.
            if self.redis.zadd(self._open, {escalation_id: now}, xx=True, ch=True, gt=True):
                self.redis.hset(self._key(escalation_id), "announced_at", str(now))
                due.append(self.get(escalation_id))
        return due
