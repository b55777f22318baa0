"""Side effects of a handled message, as typed values, and the one place they are carried out.

Handling a message changes its conversation (replies, transcript, meta) inside the
conversation's fenced commit (`bot.dispatch`). What it changes elsewhere cannot share that
commit: counters in other Redis slots, staff notifications that leave the system. Those are
returned with the replies as `Effect` values (`Outcome.effects`), committed with them to the
conversation's effects outbox, and carried out once the commit succeeded (`EffectRunner`) or by
the sweeper when the worker died first. A handling that died or lost its lease leaves none, so
none repeats.

Rule: an effect is `external` when carrying it out leaves Redis (a staff notification); those run
one at a time, each dropped from the outbox once done, so a crash repeats at most the one in flight.

The stored form (`to_dict`) is the one earlier versions wrote (`{"kind": "stats", "op": ...}`), so
effects left behind by a worker of the previous version still run after an upgrade.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar

from bot.escalations import Escalation, EscalationNotFound, EscalationQueue
from bot.stats import BotStats
from bot.store import ConversationStore

if TYPE_CHECKING:
    from redis.client import Pipeline

log = logging.getLogger(__name__)
# A Redis write the effects' runner sends in the round trip of its own writes (on a pipeline, or the client):
# the dispatcher's dropping of the effects from its outbox (`bot.dispatch`).
Settle = Callable[["Pipeline"], object]

# (escalation, transcript): a new escalation for staff; (escalation, text, author): a customer's words for their
# agent, and whose words they are (in a group, not always the escalation's customer; bot.posts records them so).
EscalationNotifier = Callable[[Escalation, list[dict]], None]
RelayNotifier = Callable[[Escalation, str, str], None]


@dataclass(frozen=True)
class Effect:
    """One side effect of a handled message; subclasses are the kinds there are."""

    external: ClassVar[bool] = False
    op: ClassVar[str] = ""  # the statistics call it stands for ("" for notifications)

    def to_dict(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def from_dict(data: dict) -> Effect:
        """The effect `to_dict` stored; `ValueError` for a shape no version wrote."""
        if data.get("kind") == "stats":
            kind = _COUNTERS.get(data.get("op", ""))
            if kind is None:
                raise ValueError(f"unknown statistics effect {data.get('op')!r}")
            return kind(*data.get("args", []))
        if data.get("kind") == "escalation":
            return AnnounceEscalation(data["escalation_id"])
        if data.get("kind") == "relay":
            return RelayToAgent(data.get("escalation_id") or "", data["conversation"], data.get("agent") or "",
                                data["text"], data.get("author") or "")
        raise ValueError(f"unknown side effect {data.get('kind')!r}")


@dataclass(frozen=True)
class _Counter(Effect):
    """A statistic (`bot.stats`): stored as its `op` and its fields, in order."""

    def args(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]

    def count(self, stats: BotStats) -> None:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"kind": "stats", "op": self.op, "args": self.args(), "external": False}


@dataclass(frozen=True)
class CountMessage(_Counter):
    op: ClassVar[str] = "message"
    conversation: str

    def count(self, stats: BotStats) -> None:
        stats.message(self.conversation)


@dataclass(frozen=True)
class CountIntent(_Counter):
    op: ClassVar[str] = "intent"
    intent: str

    def count(self, stats: BotStats) -> None:
        stats.intent(self.intent)


@dataclass(frozen=True)
class CountAnswer(_Counter):
    op: ClassVar[str] = "faq_answer"

    def count(self, stats: BotStats) -> None:
        stats.faq_answer()


@dataclass(frozen=True)
class CountFallback(_Counter):
    op: ClassVar[str] = "fallback"
    text: str

    def count(self, stats: BotStats) -> None:
        stats.fallback(self.text)


@dataclass(frozen=True)
class CountAsked(_Counter):
    """A customer's words, for the traffic a replay runs again (`bot.stats`, masked and normalised there)."""

    op: ClassVar[str] = "asked"
    text: str

    def count(self, stats: BotStats) -> None:
        stats.asked(self.text)


@dataclass(frozen=True)
class CountEscalation(_Counter):
    op: ClassVar[str] = "escalation"
    conversation: str

    def count(self, stats: BotStats) -> None:
        stats.escalation(self.conversation)


@dataclass(frozen=True)
class CountRefusedEscalation(_Counter):
    """A request for a person over the escalation limit of `scope` ("customer" or "address"; bot.ratelimit)."""

    op: ClassVar[str] = "escalation_refused"
    scope: str

    def count(self, stats: BotStats) -> None:
        stats.escalation_refused(self.scope)


@dataclass(frozen=True)
class CountExpiredEscalation(_Counter):
    """An escalation nobody claimed in time (counted by the sweep that expired it, not by a message)."""

    op: ClassVar[str] = "escalation_expired"
    channel: str

    def count(self, stats: BotStats) -> None:
        stats.escalation_expired()


@dataclass(frozen=True)
class CountRating(_Counter):
    op: ClassVar[str] = "csat"
    agent: str
    rating: int

    def count(self, stats: BotStats) -> None:
        stats.csat(self.agent, self.rating)


# The resolution figures (bot.resolution states the rule): what the bot answered, topics, returns, staff, ratings.
@dataclass(frozen=True)
class CountAnswered(_Counter):
    """The bot answered in `conversation`: `answer` is the FAQ entry or article id or `intent:NAME`, `intent`
    the message's classified intent as `intent:NAME` ("" for none); remembered for the reopen check."""

    op: ClassVar[str] = "answered"
    conversation: str
    answer: str
    intent: str = ""

    def count(self, stats: BotStats) -> None:
        stats.answered(self.conversation, self.answer, self.intent)


@dataclass(frozen=True)
class CountTopic(_Counter):
    """A message of `conversation` the bot did not answer, classified as `topic` (`intent:NAME`)."""

    op: ClassVar[str] = "topic"
    conversation: str
    topic: str

    def count(self, stats: BotStats) -> None:
        stats.topic(self.conversation, self.topic)


@dataclass(frozen=True)
class CountReopened(_Counter):
    """The customer came back with the topic of an answer given in `conversation` on `day` (UTC, YYYY-MM-DD)."""

    op: ClassVar[str] = "reopened"
    conversation: str
    day: str

    def count(self, stats: BotStats) -> None:
        stats.reopened(self.conversation, self.day)


@dataclass(frozen=True)
class CountStaffed(_Counter):
    """A customer's message in `conversation` went to staff (waiting for an agent, or held by one)."""

    op: ClassVar[str] = "staffed"
    conversation: str

    def count(self, stats: BotStats) -> None:
        stats.staffed(self.conversation)


@dataclass(frozen=True)
class CountRatedLow(_Counter):
    """`conversation` was rated 1 or 2 (`bot.csat`); `CountRating` counts the rating itself."""

    op: ClassVar[str] = "rated_low"
    conversation: str

    def count(self, stats: BotStats) -> None:
        stats.rated_low(self.conversation)


_COUNTERS: dict[str, type[_Counter]] = {kind.op: kind for kind in (
    CountMessage, CountAsked, CountIntent, CountAnswer, CountFallback, CountEscalation, CountRefusedEscalation,
    CountExpiredEscalation, CountRating, CountAnswered, CountTopic, CountReopened, CountStaffed, CountRatedLow)}


@dataclass(frozen=True)
class AnnounceEscalation(Effect):
    """Tell staff of a new escalation (with its transcript)."""

    external: ClassVar[bool] = True
    escalation_id: str

    def to_dict(self) -> dict:
        return {"kind": "escalation", "escalation_id": self.escalation_id, "external": True}


@dataclass(frozen=True)
class RelayToAgent(Effect):
    """A customer's message for the agent who holds the conversation."""

    external: ClassVar[bool] = True
    escalation_id: str
    conversation: str
    agent: str
    text: str
    author: str = ""  # who wrote it ("" in effects stored by earlier versions: the escalation's customer)

    def to_dict(self) -> dict:
        return {"kind": "relay", "escalation_id": self.escalation_id, "conversation": self.conversation,
                "agent": self.agent, "text": self.text, "author": self.author, "external": True}


class EffectRunner:
    """Carries out committed effects: counters in one round trip, then each notification."""

    def __init__(self, stats: BotStats, queue: EscalationQueue, store: ConversationStore, *,
                 on_escalation: Sequence[EscalationNotifier] = (), on_customer_message: Sequence[RelayNotifier] = ()):
        self.stats = stats
        self.queue = queue
        self.store = store
        self.on_escalation = list(on_escalation)
        self.on_customer_message = list(on_customer_message)

    def run(self, effects: Sequence[Effect], settle: Settle | None = None) -> None:
        """`Dispatcher`'s `on_effects`: one failing effect never costs the others; `settle` goes with the counts."""
        with self.stats.batch(settle):
            for effect in effects:
                try:
                    self.run_one(effect)
                except Exception:  # a notifier or Redis failing must not cost the other effects
                    log.exception("side effect %s failed", type(effect).__name__)

    def run_one(self, effect: Effect) -> None:
        match effect:
            case _Counter():
                effect.count(self.stats)
            case AnnounceEscalation(escalation_id=escalation_id):
                escalation = self.queue.get(escalation_id)
                self.announce(escalation, self.store.history(escalation.conversation_id))
            case RelayToAgent():
                try:
                    escalation = self.queue.get(effect.escalation_id) if effect.escalation_id else None
                except EscalationNotFound:
                    escalation = None
                if escalation is None:  # resolved and expired meanwhile: the agent still gets the words
                    escalation = Escalation.stub(effect.conversation, effect.agent)
                for notify in self.on_customer_message:
                    notify(escalation, effect.text, effect.author or escalation.user_id)
            case _:
                raise TypeError(f"no runner for {type(effect).__name__}")

    def announce(self, escalation: Escalation, transcript: list[dict]) -> None:
        for notify in self.on_escalation:
            try:
                notify(escalation, transcript)
            except Exception:  # staff notification failing must not lose the customer's reply
                log.exception("escalation notifier failed")
