"""The staff queue of escalated conversations, in Redis (one hash tag, so one cluster slot; see bot.keys).

    {p:esc}:ID          hash: id, conversation_id, channel, user_id, reason, status, agent, created_at, ...
    {p:esc}:all         sorted set of ids by creation time (newest first when listed)
    {p:esc}:open        sorted set of unclaimed ids by the time the sweep last looked at them
    {p:esc}:status:S    sorted set of the ids in status S: what the console lists, one page at a time
    {p:esc}:link:PLATFORM:REF   escalation id for a platform's handle on it (a Slack thread, ...)

Status goes open -> claimed -> resolved, or open -> expired when nobody claims it within
`expire_after_s` (FRONTDESK_ESCALATION_EXPIRE_HOURS): the conversation then goes back to the bot
(`bot.staff_desk`). Every change is one Lua step that moves the id between the status sets too
(`bot.escalation_scripts`), so a listing reads one status's page, never every escalation ever made.
A claim succeeds only on an open escalation, so two staff members clicking Claim at once cannot
both get it. Staff are reminded of an unclaimed one at most `max_reminders` times
(FRONTDESK_REANNOUNCE_MAX).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

import redis

from bot import escalation_scripts as scripts
from bot.keys import Keys


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
    EXPIRED = "expired"  # nobody claimed it in time: the bot has the conversation again


_TIMES = ("created_at", "announced_at", "claimed_at", "resolved_at", "expired_at", "rated_at")


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
    expired_at: float | None = None
    reminders: int = 0  # how often staff were reminded of it while it waited (at most `max_reminders`)
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
                  "reminders": str(self.reminders) if self.reminders else None,
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
                   rating=int(data["rating"]) if data.get("rating") else None,
                   reminders=int(data.get("reminders") or 0), links=links, **times)

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


@dataclass(frozen=True)
class EscalationPolicy:
    """How much of staff's attention escalations may take (docs/SUPPORT_DESK.md, "Floods").

    Escalations opened per customer and per client address, each (count, seconds), 0 switching it
    off (`bot.ratelimit.EscalationLimits`); how long an unclaimed one waits before it expires (None:
    never); how often staff are reminded of one (None: no cap). The defaults are the settings'.
    """

    per_customer: tuple[int, float] = (3, 3600.0)
    per_address: tuple[int, float] = (20, 3600.0)
    expire_after_s: float | None = 72 * 3600
    max_reminders: int | None = 3


@dataclass(frozen=True)
class UnclaimedSweep:
    """What one look at the unclaimed escalations did: those to remind staff of, and those that expired."""

    reminders: list[Escalation] = field(default_factory=list)
    expired: list[Escalation] = field(default_factory=list)


class EscalationQueue:
    def __init__(self, client: redis.Redis, keys: Keys, *, retention_s: int = 30 * 86_400,
                 expire_after_s: float | None = 72 * 3600, max_reminders: int | None = 3):
        self.redis = client
        self.keys = keys
        # A resolved or expired record names a customer: it expires this long after that
        # (FRONTDESK_ESCALATION_RETENTION_DAYS), and its id leaves the sets with it (`prune`).
        self.retention_s = retention_s
        self.expire_after_s = expire_after_s  # unclaimed this long: expired (None: never)
        self.max_reminders = max_reminders  # reminders to staff per escalation (None: no cap)
        self._claim = client.register_script(scripts.CLAIM)
        self._create = client.register_script(scripts.CREATE)
        self._resolve = client.register_script(scripts.RESOLVE)
        self._sweep_one = client.register_script(scripts.SWEEP_ONE)
        self._reindex = client.register_script(scripts.REINDEX)
        self._prune = client.register_script(scripts.PRUNE)
        self._indexed = False  # the one-time backfill is known done (`ensure_indexed`)

    def _key(self, escalation_id: str) -> str:
        return self.keys.esc(escalation_id)

    @property
    def _all(self) -> str:
        return self.keys.esc("all")

    @property
    def _open(self) -> str:
        return self.keys.esc("open")

    def _index(self, status: EscalationStatus | str) -> str:
        return self.keys.escalation_index(str(status))

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
        if not self._create(keys=[self._key(escalation_id), self._all, self._open, self._index("open")],
                            args=[escalation_id, now, *fields]):
            return self.get(escalation_id)
        return escalation

    def get(self, escalation_id: str) -> Escalation:
        raw = self.redis.hgetall(self._key(escalation_id))
        if not raw:
            raise EscalationNotFound(f"no escalation {escalation_id!r}")
        return Escalation.from_redis(raw)

    def list(self, status: EscalationStatus | str | Iterable[EscalationStatus | str] | None = None,
             limit: int = 100) -> list[Escalation]:
        """Newest first (by creation), at most `limit`: of every status (None), of one, or of several.

        Reads one page of each status set asked for (or of `all`), never the whole history, so a
        listing costs the same with ten resolved escalations or a million. `ValueError` for a status
        there is none of.
        """
        if status is None:
            return self._page(self._all, None, limit)
        wanted = [status] if isinstance(status, str) else list(status)
        statuses = list(dict.fromkeys(EscalationStatus(s) for s in wanted))
        found = [e for s in statuses for e in self._page(self._index(s), s, limit)]
        return sorted(found, key=lambda e: e.created_at, reverse=True)[:limit]

    def _page(self, index: str, status: EscalationStatus | None, limit: int) -> list[Escalation]:
        """The newest `limit` of one set, read in one round trip; ids whose record is gone (past its retention,
        erased) leave the set, and one in the wrong status set (moved by an older version) is re-filed."""
        ids = [_text(i) for i in self.redis.zrevrange(index, 0, max(limit, 1) - 1)]
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for escalation_id in ids:
            pipe.hgetall(self._key(escalation_id))
        out, gone, misplaced = [], [], []
        for escalation_id, raw in zip(ids, pipe.execute(), strict=True):
            if not raw:
                gone.append(escalation_id)
                continue
            escalation = Escalation.from_redis(raw)
            if status is not None and escalation.status != status:
                misplaced.append(escalation_id)
                continue
            out.append(escalation)
        if gone:
            self.redis.zrem(index, *gone)
            self.redis.zrem(self._all, *gone)
        for escalation_id in misplaced:
            self.refile(escalation_id)
        return out

    def refile(self, escalation_id: str) -> bool:
        """Put the escalation in the status set its record names, and in no other; False when it is gone."""
        return bool(self._reindex(keys=[self._key(escalation_id), *(self._index(s) for s in EscalationStatus),
                                        self._all], args=[escalation_id]))

    def ensure_indexed(self, batch: int = 500) -> int:
        """File every escalation from before the status sets existed, once per Redis; how many were looked at.

        Idempotent and safe beside other workers doing the same (`refile` is one Lua step per id):
        a worker that dies half-way leaves the marker unset, and the next start does it again.
        """
        marker = self.keys.esc("indexed")
        if self._indexed or self.redis.exists(marker):
            self._indexed = True
            return 0
        seen, gone = 0, []
        while True:
            ids = [_text(i) for i in self.redis.zrange(self._all, seen, seen + batch - 1)]
            gone += [escalation_id for escalation_id in ids if not self.refile(escalation_id)]
            seen += len(ids)
            if len(ids) < batch:
                break
        for start in range(0, len(gone), batch):  # past their retention before this version: out of `all` too
            self.redis.zrem(self._all, *gone[start:start + batch])
        self.redis.set(marker, "1")
        self._indexed = True
        return seen

    def claim(self, escalation_id: str, agent: str) -> Escalation:
        escalation = self.get(escalation_id)
        if not self._claim(keys=[self._key(escalation_id), self._open, self._index("open"), self._index("claimed")],
                           args=[agent, time.time(), escalation_id]):
            raise EscalationConflict(f"escalation {escalation_id} is {escalation.status}"
                                     + (f" by {escalation.agent}" if escalation.agent else ""))
        return self.get(escalation_id)

    def resolve(self, escalation_id: str, agent: str) -> Escalation:
        escalation = self.get(escalation_id)
        outcome = _text(self._resolve(
            keys=[self._key(escalation_id), self._open, self._index("open"), self._index("claimed"),
                  self._index("resolved")], args=[escalation_id, agent, time.time(), self.retention_s]))
        if outcome == "missing":
            raise EscalationNotFound(f"no escalation {escalation_id!r}")
        if outcome != "ok":
            raise EscalationConflict(f"escalation {escalation_id} is already {outcome}")
        self._expire_links(escalation)
        return self.get(escalation_id)

    def _expire_links(self, escalation: Escalation) -> None:
        """A finished escalation's platform handles go with its record (they name where the customer was)."""
        if escalation.links:
            pipe = self.redis.pipeline(transaction=False)
            for platform, ref in escalation.links.items():
                pipe.expire(self.keys.esc("link", platform, ref), self.retention_s)
            pipe.execute()

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

    def sweep_unclaimed(self, older_than: float, now: float | None = None, batch: int = 500) -> UnclaimedSweep:
        """Look at the open escalations not looked at for `older_than` seconds: expire those unclaimed past
        `expire_after_s`, and mark the rest to remind staff of, while they have reminders left.

        Every worker runs this (`StaffDesk.reannounce_unclaimed`); each escalation's turn is one Lua
        step that only one of them wins, so each reminder and each expiry happens once. At most
        `batch` escalations a call: the rest are due at the next. Also forgets the ids of resolved
        and expired escalations past their retention, and files older escalations (`ensure_indexed`).
        """
        now = time.time() if now is None else now
        self.ensure_indexed()
        expire_before = "" if self.expire_after_s is None else repr(now - self.expire_after_s)
        cap = -1 if self.max_reminders is None else self.max_reminders
        sweep = UnclaimedSweep()
        for raw_id in self.redis.zrangebyscore(self._open, "-inf", now - older_than, start=0, num=batch):
            escalation_id = _text(raw_id)
            outcome = self._sweep_one(
                keys=[self._key(escalation_id), self._open, self._index("open"), self._index("expired")],
                args=[escalation_id, repr(now), repr(now - older_than), expire_before, cap, self.retention_s])
            if int(outcome) not in (1, 2):
                continue
            try:
                escalation = self.get(escalation_id)
            except EscalationNotFound:  # erased meanwhile
                continue
            if int(outcome) == 1:
                sweep.reminders.append(replace(escalation, reannounced=True))
            else:
                self._expire_links(escalation)
                sweep.expired.append(escalation)
        self.prune(now)
        return sweep

    def due_for_reannounce(self, older_than: float) -> list[Escalation]:
        """The escalations to remind staff of now (`sweep_unclaimed`'s reminders; it expires the overdue too)."""
        return self.sweep_unclaimed(older_than).reminders

    def prune(self, now: float | None = None, limit: int = 500) -> int:
        """Drop the ids of resolved and expired escalations whose records are past their retention; how many."""
        now = time.time() if now is None else now
        return int(self._prune(keys=[self._index("resolved"), self._index("expired"), self._all],
                               args=[repr(now - self.retention_s), limit]))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
