"""Where the day statistics hold one customer, and how an erasure takes them out, once, even if run again.

Two things in `{p:stats:DAY}:*` (`bot.stats`) come from a customer: their conversation keys, as
members or hash fields (the day's `conversations` and `escalated` sets, and the resolution figures'
`answered`, `staffed`, `reopened`, `rated_low` and `topic:TOPIC`; `bot.resolution`), and their words,
normalised: every message they wrote in `asked` (the traffic a replay runs again), the ones that
fell back in `unanswered` too. The texts carry no name, so they are found through the customer's
transcripts ("customer" events for `asked`, "unanswered" events for `unanswered`); an erasure
therefore scrubs them before it deletes the transcripts (`bot.customers`).

Taking a text off is one Lua step on its day's slot: one count less (the text goes when no one
else wrote it), and a token for that event added to the day's `scrubbed` set. An erasure that died
after this step and is run again finds the same events in the transcripts it had not deleted yet,
and their tokens say they were taken off already: no other customer's count is taken twice. The
token is a hash of the conversation, the event's time and id, the text and the list it is counted
in, which says nothing without the transcript; the set expires with the day's list.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import redis

from bot.keys import Keys
from bot.stats import DAY, normalise_question

# How to ask whether a stats key of each type holds a member (or field) named by a conversation key.
_MEMBER_CHECKS = {"set": "sismember", "zset": "zscore", "hash": "hexists"}
SCRUBBED_TTL_MS = 35 * DAY * 1000  # for a day whose unanswered list is gone: as long as any day's statistics

# KEYS: the day's list (unanswered or asked), its scrubbed tokens. ARGV: text, token, TTL (ms) when the list has
# none. 2: taken off before (stop looking); 1: taken off now; 0: not on this day's list.
_SCRUB = """
if redis.call('sismember', KEYS[2], ARGV[2]) == 1 then return 2 end
local count = redis.call('zscore', KEYS[1], ARGV[1])
if not count then return 0 end
local ttl = redis.call('pttl', KEYS[1])
if tonumber(count) <= 1 then redis.call('zrem', KEYS[1], ARGV[1]) else redis.call('zincrby', KEYS[1], -1, ARGV[1]) end
redis.call('sadd', KEYS[2], ARGV[2])
redis.call('pexpire', KEYS[2], ttl > 0 and ttl or tonumber(ARGV[3]))
return 1
"""


class CountedList(StrEnum):
    """The day lists that count a customer's words, and the transcript role each is found through."""

    UNANSWERED = "unanswered"
    ASKED = "asked"


_FOUND_THROUGH = {"unanswered": CountedList.UNANSWERED, "customer": CountedList.ASKED}


@dataclass(frozen=True)
class CountedText:
    """One message of the customer's, as a day list of the statistics counts it."""

    conversation: str
    at: float
    uid: str
    question: str
    counted_in: CountedList = CountedList.UNANSWERED

    @property
    def token(self) -> str:
        raw = f"{self.conversation}\x00{self.at!r}\x00{self.uid}\x00{self.question}"
        if self.counted_in != CountedList.UNANSWERED:  # unanswered tokens keep the form earlier versions wrote
            raw += f"\x00{self.counted_in}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def days(self) -> list[str]:
        """The day the statistics counted it, then its neighbours (a message at midnight)."""
        return [time.strftime("%Y-%m-%d", time.gmtime(moment)) for moment in (self.at, self.at - DAY, self.at + DAY)]


def counted_texts(conversation: str, events: Iterable[dict]) -> list[CountedText]:
    """The customer's words in one transcript (already narrowed to theirs) as the day lists count them."""
    found = []
    for event in events:
        counted_in = _FOUND_THROUGH.get(event.get("role", ""))
        if counted_in is not None and event.get("text"):
            question = normalise_question(event["text"])
            if question:
                found.append(CountedText(conversation, float(event.get("at", 0.0)), str(event.get("uid") or ""),
                                         question, counted_in))
    return found


class CustomerStats:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis = client
        self.keys = keys
        self._scrub = client.register_script(_SCRUB)

    # ------------------------------------------------------------------ their words
    def still_counted(self, questions: Iterable[CountedText]) -> list[tuple[str, str]]:
        """(stats key, text) of each one still listed and not taken off by an earlier erasure."""
        found = []
        for item in questions:
            for day in item.days():
                key = self.keys.stats(day, item.counted_in)
                if self.redis.sismember(self.keys.stats(day, "scrubbed"), item.token):
                    break
                if self.redis.zscore(key, item.question) is not None:
                    found.append((key, item.question))
                    break
        return found

    def scrub(self, questions: Iterable[CountedText]) -> int:
        """Take each text off its day's list once; how many were taken off now."""
        taken = 0
        for item in questions:
            for day in item.days():
                done = self._scrub(keys=[self.keys.stats(day, item.counted_in), self.keys.stats(day, "scrubbed")],
                                   args=[item.question, item.token, SCRUBBED_TTL_MS])
                if done:
                    taken += done == 1
                    break
        return taken

    # ------------------------------------------------------------------ conversation keys
    def memberships(self, conversations: set[str]) -> list[tuple[str, str, str]]:
        """(key, type, member) for every stats member or hash field that is one of these conversation keys."""
        if not conversations:
            return []
        keys = [_text(k) for k in self.redis.scan_iter(match=self.keys.all_stats(), count=1000)]
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        kinds = [_text(kind) for kind in pipe.execute()]
        candidates = [(key, kind, c) for key, kind in zip(keys, kinds, strict=True) if kind in _MEMBER_CHECKS
                      for c in sorted(conversations)]
        for key, kind, conversation in candidates:
            getattr(pipe, _MEMBER_CHECKS[kind])(key, conversation)
        return [found for found, present in zip(candidates, pipe.execute(), strict=True)
                if present not in (None, False, 0)]

    def remove_memberships(self, memberships: list[tuple[str, str, str]]) -> None:
        pipe = self.redis.pipeline(transaction=False)  # one command per key: keys of many slots on a cluster
        for key, kind, member in memberships:
            {"set": pipe.srem, "zset": pipe.zrem, "hash": pipe.hdel}[kind](key, member)
        pipe.execute()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
