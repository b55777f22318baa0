"""Honest resolution figures: which conversations the bot resolved on its own, and which came back.

The unit is the conversation-day (one conversation's messages on one UTC day), as in the rest of the
day statistics (`bot.stats`). A conversation-day counts as **resolved by the bot** only when all hold:

1. answered: the bot gave at least one answer that day: an FAQ entry or help-center article (the
   knowledge base's `answer` decision), or an intent's own reply from the templates. Small talk,
   suggestions, fallbacks and hand-offs are not answers;
2. it never reached a person that day: it was not escalated, and none of its messages went to staff
   (waiting for an agent, or held by one);
3. not reopened: the customer did not come back with the same topic within FRONTDESK_RESOLUTION_HOURS
   (default 24) of an answer. A message comes back to an answer when its own answer (an FAQ entry or
   article id, or `intent:NAME`) or its classified intent (`intent:NAME`; small talk and out of scope
   have none) is the answer's or the answered message's intent. The return marks the day of the earlier
   answer as reopened, even when it comes on the next day; a return after the window is a conversation
   of its own, with no mark on the earlier one;
4. not rated low: no satisfaction rating of 1 or 2 (`bot.csat`) that day.

`handed_to_staff` counts conversation-days that reached a person (rule 2), `reopened` those rule 3 took
off, `rate` is resolved_by_bot / conversations (None without conversations), `reopen_rate` reopened /
answered. A day's figures settle once the window after it has passed: a return can still reopen it.
A conversation-day has the topics of its messages (an answer's id, else the classified intent), counted
per topic; and its channel, the first part of its key. Days before a version that keeps these figures
have none: left out of the sums, no rates (their conversations were not "not resolved", just not counted).

What the bot records, as effects of each message (`bot.effects`), all in the message's one statistics
round trip (`BotStats.batch`); every day key expires with the other day statistics:

    {p:stats:DAY}:answered       set of conversation keys the bot answered that day
    {p:stats:DAY}:staffed        set: conversations whose customer's messages went to staff that day
    {p:stats:DAY}:reopened       set: conversations answered that day that the customer came back to
    {p:stats:DAY}:rated_low      set: conversations rated 1 or 2 that day
    {p:stats:DAY}:topics         set of the day's topics; {p:stats:DAY}:topic:TOPIC the conversations with it
    {p:conv:KEY}:answered        the conversation's memory for rule 3: sorted set topic -> when last answered,
                                 at most MEMORY_CAP topics, none older than the window; the key expires with
                                 the window. Read with the conversation's meta (`ConversationStore.open`),
                                 so the check costs no round trip of its own. It holds topic ids and times,
                                 no words; exported and erased with the conversation (`bot.customers`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import redis

from bot.keys import Keys

INTENT = "intent:"  # the topic of an intent, as an answer id and as a classification (`bot.replay` names it so)
MEMORY_CAP = 20  # topics remembered per conversation: the most recent; a conversation rarely has more
LOW_RATINGS = (1, 2)


class Part(StrEnum):
    """The day sets (`{p:stats:DAY}:PART`) the rule reads; the first two are `bot.stats`'s own."""

    CONVERSATIONS = "conversations"
    ESCALATED = "escalated"
    STAFFED = "staffed"
    ANSWERED = "answered"
    REOPENED = "reopened"
    RATED_LOW = "rated_low"
    TOPICS = "topics"


def intent_topic(intent: str) -> str:
    return f"{INTENT}{intent}" if intent else ""


def utc_day(moment: float) -> str:
    """The UTC date of a moment, as the day statistics' key part (YYYY-MM-DD)."""
    return time.strftime("%Y-%m-%d", time.gmtime(moment))


@dataclass(frozen=True)
class RecentAnswers:
    """What the bot answered in one conversation within the window: topic -> when (its memory, read at each
    message's start)."""

    at: Mapping[str, float] = field(default_factory=dict)

    def reopened_days(self, topics: Iterable[str]) -> list[str]:
        """The UTC days of the earlier answers a message with these topics comes back to, oldest first."""
        return sorted({utc_day(self.at[t]) for t in topics if t and t in self.at})


@dataclass(frozen=True)
class ResolutionDay:
    """One UTC day's conversations, what happened in each (`Part` -> conversation keys), and their topics."""

    day: str
    sets: Mapping[Part, frozenset[str]]
    topics: Mapping[str, frozenset[str]] = field(default_factory=dict)
    recorded: bool = True  # False: a day before the figures were kept (no rates, left out of the sums)

    @property
    def conversations(self) -> frozenset[str]:
        return self.sets[Part.CONVERSATIONS]

    def answered(self, conversation: str) -> bool:
        return conversation in self.sets[Part.ANSWERED]

    def handed(self, conversation: str) -> bool:
        return conversation in self.sets[Part.ESCALATED] or conversation in self.sets[Part.STAFFED]

    def reopened(self, conversation: str) -> bool:
        return self.answered(conversation) and conversation in self.sets[Part.REOPENED]

    def resolved(self, conversation: str) -> bool:
        """The rule of the module docstring, for one of the day's conversations."""
        return (self.answered(conversation) and not self.handed(conversation) and not self.reopened(conversation)
                and conversation not in self.sets[Part.RATED_LOW])


@dataclass
class Figures:
    """Conversation-days counted under the rule; the shape of `resolution` in `GET /admin/stats`."""

    conversations: int = 0
    answered: int = 0
    resolved_by_bot: int = 0
    handed_to_staff: int = 0
    reopened: int = 0

    def count(self, day: ResolutionDay, conversation: str) -> None:
        self.conversations += 1
        self.answered += day.answered(conversation)
        self.resolved_by_bot += day.resolved(conversation)
        self.handed_to_staff += day.handed(conversation)
        self.reopened += day.reopened(conversation)

    @property
    def rate(self) -> float | None:
        return round(self.resolved_by_bot / self.conversations, 4) if self.conversations else None

    @property
    def reopen_rate(self) -> float | None:
        return round(self.reopened / self.answered, 4) if self.answered else None

    def to_dict(self) -> dict:
        return {"conversations": self.conversations, "resolved_by_bot": self.resolved_by_bot,
                "handed_to_staff": self.handed_to_staff, "reopened": self.reopened, "rate": self.rate,
                "answered": self.answered, "reopen_rate": self.reopen_rate}


def read_days(client: redis.Redis, keys: Keys, dates: list[str], *, topics: bool = True) -> list[ResolutionDay]:
    """The days' sets in one round trip, and with `topics` their topic sets in a second."""
    pipe = client.pipeline(transaction=False)
    for day in dates:
        pipe.hexists(keys.stats(day, "counts"), "resolution")  # set with the day's first message (BotStats.message)
        for part in Part:
            pipe.smembers(keys.stats(day, part))
    raw = iter(pipe.execute())
    read = [(day, bool(next(raw)), {part: frozenset(_text(m) for m in next(raw)) for part in Part}) for day in dates]
    if not topics:
        return [ResolutionDay(day, sets, recorded=recorded) for day, recorded, sets in read]
    wanted = [(day, topic) for day, _, sets in read for topic in sorted(sets[Part.TOPICS])]
    for day, topic in wanted:
        pipe.smembers(keys.stats_topic(day, topic))
    members = dict(zip(wanted, pipe.execute() if wanted else [], strict=True))
    return [ResolutionDay(day, sets, {topic: frozenset(_text(m) for m in members[(day, topic)])
                                      for topic in sorted(sets[Part.TOPICS])}, recorded)
            for day, recorded, sets in read]


def figures(days: list[ResolutionDay]) -> dict:
    """`resolution` of `GET /admin/stats`: the figures over the days, per channel and per topic (most
    conversations first)."""
    total = Figures()
    channels: dict[str, Figures] = {}
    topics: dict[str, Figures] = {}
    for day in filter(lambda d: d.recorded, days):
        for conversation in sorted(day.conversations):
            total.count(day, conversation)
            channels.setdefault(conversation.partition(":")[0], Figures()).count(day, conversation)
        for topic, conversations in day.topics.items():
            for conversation in sorted(conversations & day.conversations):
                topics.setdefault(topic, Figures()).count(day, conversation)
    return {**total.to_dict(),
            "by_channel": {name: channels[name].to_dict() for name in sorted(channels)},
            "by_topic": {name: f.to_dict() for name, f in sorted(topics.items(),
                                                                 key=lambda item: (-item[1].conversations, item[0]))}}


def day_rates(day: ResolutionDay) -> dict:
    """A day's `resolution_rate` and `reopen_rate`, for the console's charts (`BotStats.daily`)."""
    one = Figures()
    for conversation in day.conversations if day.recorded else ():
        one.count(day, conversation)
    return {"resolution_rate": one.rate, "reopen_rate": one.reopen_rate}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
