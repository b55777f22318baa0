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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

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
    """An action on an escalation that cannot be done; the subclasses say why."""


class EscalationNotFound(EscalationError):
    """No escalation has this id (never made, or expired after its retention, or erased)."""


class EscalationConflict(EscalationError):
    """The escalation's state does not allow the action (already claimed, already resolved)."""


class EscalationStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


_TIMES = ("created_at", "announced_at", "claimed_at", "resolved_at", "rated_at")


@dataclass(frozen=True)
class Escalation:
    """One escalated conversation as staff see it; `to_redis` / `from_redis` are its hash's fields."""

    id: str
    conversation_id: str
    channel: str
    user_id: str
    reason: str
    status: EscalationStatus = EscalationStatus.OPEN
    created_at: float = 0.0
    announced_at: float = 0.0
    agent: str | None = None
    claimed_at: float | None = None
    resolved_at: float | None = None
    resolved_by: str | None = None
    display_name: str | None = None  # the customer's name, where their channel gave one
    out_of_hours: bool = False  # opened while staff were away (bot.hours): the customer was told when
    rating: int | None = None  # the customer's CSAT rating after the resolution (bot.csat)
    rated_at: float | None = None
    links: Mapping[str, str] = field(default_factory=dict)  # platform -> its handle (a Slack thread)
    reannounced: bool = False  # not stored: set on a reminder to staff (`EscalationQueue.due_for_reannounce`)

    @classmethod
    def stub(cls, conversation_id: str, agent: str | None) -> Escalation:
        """Stands for an escalation that is gone, where only its conversation and agent are known."""
        return cls(id="", conversation_id=conversation_id, channel=conversation_id.partition(":")[0], user_id="",
                   reason="", status=EscalationStatus.CLAIMED, agent=agent or None)

    def link(self, platform: str) -> str | None:
        return self.links.get(platform)

    def to_redis(self) -> dict[str, str]:
        fields = {"id": self.id, "conversation_id": self.conversation_id, "channel": self.channel,
                  "user_id": self.user_id, "reason": self.reason, "status": str(self.status),
                  "agent": self.agent, "resolved_by": self.resolved_by, "display_name": self.display_name,
                  "out_of_hours": "1" if self.out_of_hours else None,
                  "rating": str(self.rating) if self.rating is not None else None,
                  **{name: getattr(self, name) for name in _TIMES},
                  **{f"link:{platform}": ref for platform, ref in self.links.items()}}
        return {k: str(v) for k, v in fields.items() if v is not None}

    @classmethod
    def from_redis(cls, raw: Mapping) -> Escalation:
        data = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in raw.items()}
        links = {k.partition(":")[2]: v for k, v in data.items() if k.startswith("link:")}
        times = {name: float(data[name]) for name in _TIMES if data.get(name)}
        return cls(id=data["id"], conversation_id=data["conversation_id"], channel=data["channel"],
                   user_id=data.get("user_id", ""), reason=data.get("reason", ""),
                   status=EscalationStatus(data.get("status", "open")), agent=data.get("agent") or None,
                   resolved_by=data.get("resolved_by") or None, display_name=data.get("display_name") or None,
                   out_of_hours=data.get("out_of_hours") == "1",
                   rating=int(data["rating"]) if data.get("rating") else None, links=links, **times)

    def to_public(self) -> dict:
        """The admin API's view (GET /admin/escalations): ids, state, times, name, hours flag and rating."""
        return {"id": self.id, "conversation_id": self.conversation_id, "channel": self.channel,
                "user_id": self.user_id, "reason": self.reason, "status": str(self.status), "agent": self.agent,
                "created_at": self.created_at, "claimed_at": self.claimed_at, "resolved_at": self.resolved_at,
                "resolved_by": self.resolved_by, "out_of_hours": self.out_of_hours,
                "display_name": self.display_name, "rating": self.rating}


@dataclass(frozen=True)
class StaffResult:
    """What a staff action did: the escalation after it, and whether the customer's platform took the message
    the action sent them (False: refused after the channel's retries; marked in the transcript for staff)."""

    escalation: Escalation
    delivered: bool = True


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

    def create(self, *, conversation_id: str, channel: str, user_id: str, reason: str, uid: str = "",
               display_name: str | None = None, out_of_hours: bool = False) -> Escalation:
        """Open an escalation; with the `uid` of the message that caused it, at most one per message.

        The id is then derived from the uid, and creating it again (the message handled again
        after its worker died) returns the record made the first time instead of a second one.
        """
        escalation_id = uid[:16] if uid else uuid.uuid4().hex[:12]
        now = time.time()
        escalation = Escalation(id=escalation_id, conversation_id=conversation_id, channel=channel, user_id=user_id,
                                reason=reason, created_at=now, announced_at=now, display_name=display_name or None,
                                out_of_hours=out_of_hours)
        fields = [x for kv in escalation.to_redis().items() for x in kv]
        if not self._create(keys=[self._key(escalation_id), self._all, self._open], args=[escalation_id, now, *fields]):
            return self.get(escalation_id)
        return escalation

    def get(self, escalation_id: str) -> Escalation:
        raw = self.redis.hgetall(self._key(escalation_id))
        if not raw:
            raise EscalationNotFound(f"no escalation {escalation_id!r}")
        return Escalation.from_redis(raw)

    def list(self, status: EscalationStatus | str | None = None, limit: int = 100) -> list[Escalation]:
        """Newest first."""
        ids = self.redis.zrevrange(self._all, 0, -1)
        out = []
        for raw_id in ids:
            try:
                escalation = self.get(raw_id.decode() if isinstance(raw_id, bytes) else raw_id)
            except EscalationNotFound:  # expired after its retention (or erased): the index forgets it too
                self.redis.zrem(self._all, raw_id)
                continue
            if status is None or escalation.status == status:
                out.append(escalation)
            if len(out) >= limit:
                break
        return out

    def claim(self, escalation_id: str, agent: str) -> Escalation:
        escalation = self.get(escalation_id)
        if not self._claim(keys=[self._key(escalation_id), self._open], args=[agent, time.time(), escalation_id]):
            raise EscalationConflict(f"escalation {escalation_id} is {escalation.status}"
                                     + (f" by {escalation.agent}" if escalation.agent else ""))
        return self.get(escalation_id)

    def resolve(self, escalation_id: str, agent: str) -> Escalation:
        escalation = self.get(escalation_id)
        if escalation.status == EscalationStatus.RESOLVED:
            raise EscalationConflict(f"escalation {escalation_id} is already resolved")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(escalation_id), mapping={"status": str(EscalationStatus.RESOLVED), "resolved_by": agent,
                                                     "resolved_at": str(time.time())})
        pipe.zrem(self._open, escalation_id)
        pipe.expire(self._key(escalation_id), self.retention_s)
        for platform, ref in escalation.links.items():
            pipe.expire(self.keys.esc("link", platform, ref), self.retention_s)
        pipe.execute()
        return self.get(escalation_id)

    def rate(self, escalation_id: str, rating: int, at: float) -> None:
        """The customer's satisfaction rating after the resolution (bot.csat)."""
        self.redis.hset(self._key(escalation_id), mapping={"rating": str(rating), "rated_at": str(at)})

    def link(self, escalation_id: str, platform: str, ref: str) -> None:
        """Remember a platform's handle on this escalation (say, the Slack thread staff discuss it in)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(escalation_id), f"link:{platform}", ref)
        pipe.set(self.keys.esc("link", platform, ref), escalation_id, ex=30 * 86_400)
        pipe.execute()

    def find_by_link(self, platform: str, ref: str) -> Escalation | None:
        raw = self.redis.get(self.keys.esc("link", platform, ref))
        if raw is None:
            return None
        try:
            return self.get(raw.decode() if isinstance(raw, bytes) else raw)
        except EscalationNotFound:
            return None

    def due_for_reannounce(self, older_than: float) -> list[Escalation]:
        """Open escalations last announced more than `older_than` seconds ago, marked as reminders; marks them
        announced now."""
        now = time.time()
        due = []
        for raw_id in self.redis.zrangebyscore(self._open, 0, now - older_than):
            escalation_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            # Only one process re-announces: the one whose ZADD XX CH moves the score.
            if self.redis.zadd(self._open, {escalation_id: now}, xx=True, ch=True, gt=True):
                self.redis.hset(self._key(escalation_id), "announced_at", str(now))
                due.append(replace(self.get(escalation_id), reannounced=True))
        return due
