"""Conversation statistics per UTC day, in Redis, for the staff console's numbers.

What the bot records as it handles messages (keys in `bot.keys`):

    counts       hash: messages, escalations, fallbacks, faq_answers, escalations_refused (over an
                 escalation limit, also per scope as escalations_refused:customer / :address),
                 escalations_expired (unclaimed in time)
    conversations  set of conversation keys that had a customer message that day
    escalated    set of conversation keys escalated that day
    intents      sorted set: intent -> messages classified as it
    unanswered   sorted set: normalised customer text that fell back -> times (capped at `unanswered_cap`)
    asked        sorted set: every normalised customer text -> times (capped at `asked_cap`, the most
                 frequent kept): the traffic `model check --replay` and `kb check --replay` run again
    answered, staffed, reopened, rated_low, topics, topic:TOPIC
                 sets for the resolution figures, and each conversation's memory of what it was answered
                 (`bot.resolution`, which states the rule and reads them)

Sets rather than counters for conversations, so a conversation counts once a day however
many messages it has, and "contained" (answered without escalation) is exact:
conversations minus escalated conversations. Every key expires after `ttl` seconds, so the
numbers need no clean-up job.

Statistics are a side line: a Redis error while recording is logged and swallowed so that
it never costs a customer their reply (`summary` does raise; the admin route answers 503).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import redis

from bot.keys import Keys
from bot.resolution import MEMORY_CAP, day_rates, figures, read_days

log = logging.getLogger(__name__)

DAY = 86_400
# The writes collected by `BotStats.batch` on this thread; None outside one.
_BATCH: ContextVar[list | None] = ContextVar("frontdesk_stats_batch", default=None)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_NUMBER = re.compile(r"\d[\d \-]{2,}\d")  # order, phone and card numbers: 4+ digits, maybe spaced
_SPACE = re.compile(r"\s+")


def normalise_question(text: str, cap: int = 200) -> str:
    """The form unanswered questions are counted in: lower case, one space, numbers and e-mails masked.

    Masking makes "where is order 48213" and "where is order 51002" one question, and keeps
    card numbers and addresses out of a list many staff see.
    """
    text = _EMAIL.sub("<email>", text)
    text = _NUMBER.sub("<number>", text)
    text = _SPACE.sub(" ", text).strip().lower().strip(" ?!.,;:")
    return text[:cap]


class BotStats:
    def __init__(self, client: redis.Redis, keys: Keys, *, ttl: int = 35 * DAY, unanswered_cap: int = 500,
                 text_cap: int = 200, clock: Callable[[], float] = time.time, text_ttl: int | None = None,
                 asked_cap: int = 5000, resolution_s: float = 24 * 3600):
        self.redis = client
        self.keys = keys
        self.ttl = ttl
        # Customers' own words (the unanswered questions) go sooner than the counts: after the escalation
        # retention (FRONTDESK_ESCALATION_RETENTION_DAYS) when that is shorter. Counts stay `ttl`.
        self.text_ttl = min(ttl, text_ttl) if text_ttl else ttl
        self.unanswered_cap = unanswered_cap
        self.asked_cap = asked_cap
        self.text_cap = text_cap
        self.clock = clock  # injectable so tests can record on other days
        self.resolution_s = resolution_s  # FRONTDESK_RESOLUTION_HOURS: how long a return reopens an answer

    def day(self, offset: int = 0) -> str:
        """The UTC date `offset` days ago, as the key part (YYYY-MM-DD)."""
        return time.strftime("%Y-%m-%d", time.gmtime(self.clock() - offset * DAY))

    # ------------------------------------------------------------------ recording (never raises)
    def message(self, conversation: str) -> None:
        """A customer message arrived in `conversation`."""
        day = self.day()
        counts = self.keys.stats(day, "counts")
        # `resolution`: this day's messages were recorded by a version that keeps the resolution figures (a day
        # before the upgrade has none to count, rather than none resolved; bot.resolution).
        self._write(lambda pipe: (pipe.hincrby(counts, "messages", 1), pipe.hsetnx(counts, "resolution", 1),
                                  pipe.sadd(self.keys.stats(day, "conversations"), conversation)),
                    day, "counts", "conversations")

    def intent(self, intent: str) -> None:
        day = self.day()
        self._write(lambda pipe: pipe.zincrby(self.keys.stats(day, "intents"), 1, intent), day, "intents")

    def faq_answer(self) -> None:
        day = self.day()
        self._write(lambda pipe: pipe.hincrby(self.keys.stats(day, "counts"), "faq_answers", 1), day, "counts")

    def fallback(self, text: str) -> None:
        """Nothing fitted `text`: count it, and count the question among the day's unanswered ones."""
        day = self.day()
        question = normalise_question(text, self.text_cap)
        self._write(lambda pipe: pipe.hincrby(self.keys.stats(day, "counts"), "fallbacks", 1), day, "counts")
        if question:
            self._count_text(day, "unanswered", question, self.unanswered_cap)

    def asked(self, text: str) -> None:
        """A customer wrote `text`: counted among the day's questions, masked and normalised like the unanswered."""
        day = self.day()
        question = normalise_question(text, self.text_cap)
        if question:
            self._count_text(day, "asked", question, self.asked_cap)

    def _count_text(self, day: str, part: str, question: str, cap: int) -> None:
        key = self.keys.stats(day, part)

        def write(pipe) -> None:
            pipe.zincrby(key, 1, question)
            pipe.zremrangebyrank(key, 0, -(cap + 1))  # keep the `cap` most frequent; a no-op below the cap
            pipe.expire(key, self.text_ttl)  # customers' words: the shorter retention

        self._write(write, day)

    def escalation(self, conversation: str) -> None:
        day = self.day()
        self._write(lambda pipe: (pipe.hincrby(self.keys.stats(day, "counts"), "escalations", 1),
                                  pipe.sadd(self.keys.stats(day, "escalated"), conversation)),
                    day, "counts", "escalated")

    def escalation_refused(self, scope: str) -> None:
        """A request for a person over the escalation limit of `scope` (bot.ratelimit.LimitScope)."""
        day = self.day()
        key = self.keys.stats(day, "counts")
        self._write(lambda pipe: (pipe.hincrby(key, "escalations_refused", 1),
                                  pipe.hincrby(key, f"escalations_refused:{scope}", 1)), day, "counts")

    def escalation_expired(self) -> None:
        """An escalation expired unclaimed (counted on the day it expired)."""
        day = self.day()
        self._write(lambda pipe: pipe.hincrby(self.keys.stats(day, "counts"), "escalations_expired", 1), day, "counts")

    def csat(self, agent: str, rating: int) -> None:
        """A customer rated the help `agent` gave them (1-5): counts and sums, overall and per agent."""
        day = self.day()
        key = self.keys.stats(day, "csat")
        self._write(lambda pipe: (pipe.hincrby(key, "count", 1), pipe.hincrby(key, "sum", rating),
                                  pipe.hincrby(key, f"count:{agent}", 1), pipe.hincrby(key, f"sum:{agent}", rating)),
                    day, "csat")

    # ------------------------------------------------------------------ resolution (the rule: bot.resolution)
    def answered(self, conversation: str, answer: str, intent: str = "") -> None:
        """The bot answered in `conversation` with `answer` (an FAQ entry or article id, or `intent:NAME`) a
        message classified as `intent` (`intent:NAME`, "" for none): the day's answered conversations and
        topic, and the conversation's memory of both for the reopen check (bounded, expiring with the window)."""
        if not answer:  # nothing to name the answer by (no caller sends one): a bad write would cost the batch
            return
        day, now = self.day(), self.clock()
        memory = self.keys.answered(conversation)

        def write(pipe) -> None:
            pipe.sadd(self.keys.stats(day, "answered"), conversation)
            self._topic(pipe, day, conversation, answer)
            pipe.zadd(memory, dict.fromkeys((t for t in (answer, intent) if t), now))
            pipe.zremrangebyscore(memory, "-inf", f"({now - self.resolution_s}")
            pipe.zremrangebyrank(memory, 0, -(MEMORY_CAP + 1))  # the most recent topics are kept
            pipe.expire(memory, max(1, math.ceil(self.resolution_s)))

        self._write(write, day, "answered", "topics")

    def topic(self, conversation: str, topic: str) -> None:
        """A message of `conversation` the bot did not answer was about `topic` (its intent, `intent:NAME`)."""
        day = self.day()
        self._write(lambda pipe: self._topic(pipe, day, conversation, topic), day, "topics")

    def _topic(self, pipe, day: str, conversation: str, topic: str) -> None:
        key = self.keys.stats_topic(day, topic)
        pipe.sadd(self.keys.stats(day, "topics"), topic)
        pipe.sadd(key, conversation)
        pipe.expire(key, self.ttl)

    def reopened(self, conversation: str, day: str) -> None:
        """The customer came back to an answer given in `conversation` on `day` (an earlier day, or today)."""
        self._write(lambda pipe: pipe.sadd(self.keys.stats(day, "reopened"), conversation), day, "reopened")

    def staffed(self, conversation: str) -> None:
        """A customer's message in `conversation` went to staff (waiting for an agent, or held by one)."""
        day = self.day()
        self._write(lambda pipe: pipe.sadd(self.keys.stats(day, "staffed"), conversation), day, "staffed")

    def rated_low(self, conversation: str) -> None:
        """`conversation` was rated 1 or 2 (`bot.csat`)."""
        day = self.day()
        self._write(lambda pipe: pipe.sadd(self.keys.stats(day, "rated_low"), conversation), day, "rated_low")

    @contextlib.contextmanager
    def batch(self, also: Callable[[redis.client.Pipeline], object] | None = None) -> Iterator[None]:
        """Everything recorded inside goes to Redis in one round trip, at the end (a message's several counts),
        with `also`: a caller's own write that belongs with them (the dispatcher's outbox entry for them)."""
        writes: list[tuple[Callable, str, tuple[str, ...]]] = [(also, "", ())] if also is not None else []
        collecting = _BATCH.set(writes)
        try:
            yield
        finally:
            _BATCH.reset(collecting)
            if writes:
                self._execute(writes)

    def _write(self, commands: Callable[[redis.client.Pipeline], object], day: str, *parts: str) -> None:
        batch = _BATCH.get()
        if batch is not None:
            batch.append((commands, day, parts))
        else:
            self._execute([(commands, day, parts)])

    def _execute(self, writes: list[tuple[Callable, str, tuple[str, ...]]]) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for commands, day, parts in writes:
                commands(pipe)
                for part in parts:
                    pipe.expire(self.keys.stats(day, part), self.ttl)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("conversation statistics not recorded: Redis unavailable (%s)", type(exc).__name__)

    # ------------------------------------------------------------------ reading
    def summary(self, days: int = 1, top: int = 10) -> dict:
        """The numbers of the last `days` UTC days (today included), for the console.

        Over several days a conversation active on two of them counts on both: the rates
        are per conversation-day, which keeps them exact without storing a union.
        """
        if days < 1:
            raise ValueError("days must be at least 1")
        dates = [self.day(offset) for offset in range(days)]
        pipe = self.redis.pipeline(transaction=False)
        for day in dates:
            pipe.hgetall(self.keys.stats(day, "counts"))
            pipe.scard(self.keys.stats(day, "conversations"))
            pipe.scard(self.keys.stats(day, "escalated"))
            pipe.zrange(self.keys.stats(day, "intents"), 0, -1, withscores=True)
            pipe.zrange(self.keys.stats(day, "unanswered"), 0, -1, withscores=True)
            pipe.hgetall(self.keys.stats(day, "csat"))
        results = pipe.execute()
        csat_fields: Counter[str] = Counter()
        for i in range(len(dates)):
            csat_fields.update({_text(k): int(v) for k, v in results.pop(i * 5 + 5).items()})
        counts: Counter[str] = Counter()
        intents: Counter[str] = Counter()
        unanswered: Counter[str] = Counter()
        conversations = escalated = 0
        for i in range(len(dates)):
            day_counts, day_conversations, day_escalated, day_intents, day_unanswered = results[i * 5:i * 5 + 5]
            counts.update({_text(k): int(v) for k, v in day_counts.items()})
            conversations += day_conversations
            escalated += day_escalated
            intents.update({_text(k): int(v) for k, v in day_intents})
            unanswered.update({_text(k): int(v) for k, v in day_unanswered})
        escalation_rate = escalated / conversations if conversations else None
        return {
            "days": days,
            "since": dates[-1],
            "messages_today": counts["messages"],
            "conversations_today": conversations,
            "contained_conversations": conversations - escalated,
            "escalated_conversations": escalated,
            "escalations": counts["escalations"],
            "escalations_refused": counts["escalations_refused"],
            "escalations_expired": counts["escalations_expired"],
            "fallbacks": counts["fallbacks"],
            "faq_answers": counts["faq_answers"],
            "containment_rate": None if escalation_rate is None else round(1 - escalation_rate, 4),
            "escalation_rate": None if escalation_rate is None else round(escalation_rate, 4),
            "top_intents": _top(intents, top),
            "top_unanswered": _top(unanswered, top),
            "csat": csat_summary(csat_fields),
            "resolution": figures(read_days(self.redis, self.keys, dates)),
        }

    def asked_questions(self, days: int) -> Counter[str]:
        """Every customer text of the last `days` UTC days (today included), normalised, with how often it came."""
        pipe = self.redis.pipeline(transaction=False)
        for offset in range(days):
            pipe.zrange(self.keys.stats(self.day(offset), "asked"), 0, -1, withscores=True)
        asked: Counter[str] = Counter()
        for day in pipe.execute():
            asked.update({_text(k): int(v) for k, v in day})
        return asked

    def daily(self, days: int = 30) -> list[dict]:
        """One entry per UTC day, oldest first, for the console's charts: messages, conversations, the
        containment, escalation, resolution and reopen rates (None on a day without conversations; the last
        two by `bot.resolution`'s rule) and CSAT."""
        if days < 1:
            raise ValueError("days must be at least 1")
        dates = [self.day(offset) for offset in reversed(range(days))]
        pipe = self.redis.pipeline(transaction=False)
        for day in dates:
            pipe.hget(self.keys.stats(day, "counts"), "messages")
            pipe.scard(self.keys.stats(day, "conversations"))
            pipe.scard(self.keys.stats(day, "escalated"))
            pipe.hmget(self.keys.stats(day, "csat"), "count", "sum")
        results = pipe.execute()
        resolution = read_days(self.redis, self.keys, dates, topics=False)
        series = []
        for i, day in enumerate(dates):
            messages, conversations, escalated, (rated, total) = results[i * 4:i * 4 + 4]
            rate = escalated / conversations if conversations else None
            series.append({"day": day, "messages": int(messages or 0), "conversations": conversations,
                           "escalated": escalated,
                           "containment_rate": None if rate is None else round(1 - rate, 4),
                           "escalation_rate": None if rate is None else round(rate, 4),
                           "csat_count": int(rated or 0),
                           "csat_average": round(int(total) / int(rated), 2) if rated and int(rated) else None,
                           **day_rates(resolution[i])})
        return series


def csat_summary(fields: Counter[str]) -> dict:
    """`{"count", "average", "by_agent": {name: {"count", "average"}}}` from summed csat hash fields."""
    def average(count: int, total: int) -> float | None:
        return round(total / count, 2) if count else None

    agents = sorted(k.partition(":")[2] for k in fields if k.startswith("count:"))
    return {"count": fields["count"], "average": average(fields["count"], fields["sum"]),
            "by_agent": {a: {"count": fields[f"count:{a}"], "average": average(fields[f"count:{a}"],
                                                                               fields[f"sum:{a}"])}
                         for a in agents}}


def _top(counter: Counter[str], n: int) -> list[tuple[str, int]]:
    """Most common first; ties in alphabetical order so the list is stable between polls."""
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:n]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
