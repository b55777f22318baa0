"""The answer rule: one decision from FAQ retrieval and the intent model together.

Retrieval alone decides badly on how customers write: a message describing a situation
("the mug was smashed when the box arrived") scores modestly against every phrasing of
"My order arrived damaged", while the intent model, trained on such messages, is sure of
`damaged_item`. An entry that names the intents it answers (`intents:` in the source) is
lifted by the intent model's confidence, so the two signals agree on one entry; entries
without links still compete on retrieval alone.

The rule, in order:
- the message is one of an entry's own phrasings (a clicked suggestion): answer that entry;
- out of scope (the intent model's flag): decline unless retrieval alone clears a higher bar;
- the best entry clearly ahead of the runner-up and above the answer bar: answer it;
- two or three entries close together above the suggestion bar: offer them (never one alone,
  a single suggestion is an answer the bot was too shy to give);
- otherwise decline honestly.
The bars come from `knowledge.calibration`, chosen per knowledge base for a target rate of
wrong answers on customers' questions.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Protocol

from knowledge.records import FaqEntry

NEVER = 9.0  # a bar no cosine-based score reaches (JSON has no infinity)
# An article passage within this much of a curated FAQ entry's score is a tie, and the entry wins it: an admin
# wrote that answer for such questions, the article was written for reading.
CURATED_TIE = 0.01


class DecisionKind(StrEnum):
    ANSWER = "answer"
    SUGGEST = "suggest"
    NONE = "none"


class IntentSignal(Protocol):
    """What the policy needs from the intent model (`nlu.predictor.NluResult` has these)."""

    intent: str
    confidence: float
    out_of_scope: bool


@dataclass(frozen=True)
class Signal:
    """A plain intent signal, for calibration and callers without an NLU result at hand."""

    intent: str
    confidence: float
    out_of_scope: bool = False


@dataclass
class Hit:
    entry: FaqEntry
    score: float  # retrieval score, lifted by a linked confident intent where the policy applies one

    @property
    def id(self) -> str:
        """What this hit answers with: the FAQ entry, or the article its passage belongs to."""
        return self.entry.answer_id

    @property
    def source(self) -> dict:
        """Where an answer from this hit comes from, as replies and searches report it."""
        article = self.entry.article
        if article is None:
            return {"kind": "faq", "id": self.entry.id}
        return {"kind": "article", **article.to_dict()}


@dataclass
class Decision:
    kind: DecisionKind
    hits: list[Hit] = field(default_factory=list)  # the answer first, or the suggestions
    version: str = ""  # the knowledge-base version that decided
    reason: str = ""  # why, in a few words (for the review inbox and debugging, never for customers)
    text: str = ""  # an answer's reply: the FAQ answer, or what it quotes of the passage (`knowledge.quoting`)
    # The message's sentence embedding the search used: kept with what the bot could not answer, so grouping
    # those messages into topics embeds nothing again (bot.gaps).
    vector: object = field(default=None, repr=False, compare=False)

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None


@dataclass
class PolicyThresholds:
    """The bars of the answer rule; `calibration.calibrate` chooses them per knowledge base."""

    answer: float = 0.72  # best (lifted) score needed to answer
    margin: float = 0.0  # lead over the runner-up needed to answer
    suggest: float = 0.5  # score an entry needs to be suggested
    suggest_gap: float = 0.08  # suggestions lie within this much of the best
    intent_boost: float = 0.0  # added to linked entries' scores, times the intent's confidence
    intent_confidence: float = 0.7  # an intent below this confidence lifts nothing
    oos_extra: float = NEVER  # an out-of-scope message is answered only above answer + this
    method: str = "default"
    measured: dict = field(default_factory=dict)  # outcome rates on the calibration questions

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PolicyThresholds:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def lift(hits: list[Hit], signal: IntentSignal | None, thresholds: PolicyThresholds) -> list[Hit]:
    """Hits re-scored with the intent model's vote, best first.

    A confident in-scope intent adds `intent_boost x confidence` to every entry linked to it,
    which both boosts those entries and, with a large boost, narrows the choice to them.
    """
    if (signal is None or signal.out_of_scope or thresholds.intent_boost <= 0
            or signal.confidence < thresholds.intent_confidence):
        return prefer_curated(list(hits))
    bonus = thresholds.intent_boost * float(signal.confidence)
    lifted = [replace(h, score=round(h.score + bonus, 5)) if signal.intent in h.entry.intents else h for h in hits]
    return prefer_curated(sorted(lifted, key=lambda h: -h.score))


def prefer_curated(ranked: list[Hit]) -> list[Hit]:
    """`ranked` without the passages that tie a curated entry ranked below them (within CURATED_TIE).

    The passage leaves rather than the entry moving up: the entry then leads by its own margin over
    whatever comes next, as if the article had not been there.
    """
    curated = [h.score for h in ranked if h.entry.article is None]
    if not curated or len(curated) == len(ranked):
        return ranked
    return [h for h in ranked if h.entry.article is None
            or not any(abs(h.score - score) <= CURATED_TIE for score in curated)]


@lru_cache(maxsize=1 << 16)  # every message compares against the same phrasings: each is normalised once
def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def exact_match(hits: list[Hit], query: str) -> Hit | None:
    """The hit whose question or alternate is the query itself, give or take case and punctuation."""
    wanted = _normal(query)
    for hit in hits:
        if any(_normal(t) == wanted for t in (hit.entry.question, *hit.entry.alternates)):
            return hit
    return None


def decide(hits: list[Hit], signal: IntentSignal | None, thresholds: PolicyThresholds,
           version: str = "", query: str | None = None) -> Decision:
    """The decision for one message, from its retrieval hits (best first) and intent signal."""
    exact = exact_match(hits, query) if query else None
    if exact is not None:  # a suggestion the customer clicked, or the FAQ's own wording: no doubt left
        return Decision(DecisionKind.ANSWER, [exact, *(h for h in hits if h is not exact)], version, "exact phrasing")
    ranked = lift(hits, signal, thresholds)
    if not ranked:
        return Decision(DecisionKind.NONE, [], version, "no entries")
    top = ranked[0].score
    runner_up = ranked[1].score if len(ranked) > 1 else -1.0
    bar = thresholds.answer
    out_of_scope = bool(signal is not None and signal.out_of_scope)
    if out_of_scope:
        bar += thresholds.oos_extra
    if top >= bar and top - runner_up >= thresholds.margin:
        return Decision(DecisionKind.ANSWER, ranked, version, "out of scope, but a close match" if out_of_scope
                        else "clear best entry")
    if out_of_scope:
        return Decision(DecisionKind.NONE, [], version, "out of scope")
    # Within the margin of the best counts as close too: when the margin is what stopped an answer,
    # the runner-up that stopped it is offered beside the best.
    gap = max(thresholds.suggest_gap, thresholds.margin)
    close = [h for h in ranked[:3] if h.score >= thresholds.suggest and top - h.score <= gap]
    if len(close) >= 2:
        return Decision(DecisionKind.SUGGEST, close, version, "several close entries")
    return Decision(DecisionKind.NONE, [], version, "no entry clearly best" if top >= bar
                    else "no entry scores high enough")
