"""Real traffic through two versions of the bot, and what would change for customers (`--replay`, `--gate`).

The traffic is what the statistics keep (`bot.stats`, the day lists `asked`): every customer text
of the last days, masked and normalised, with how often it came. Each distinct text is decided
twice, by the serving version and by the candidate (another model, or another knowledge base),
with the bot's own rule (`Responder.decisions_for`); every change is counted as often as the
text came, and sorted into a `Change`.

Rule: a *decision* is what the customer would get: an answer (and which), suggestions, the
"didn't understand" fallback, or a person. Suggestions and the fallback both decline to answer.
`changed_share` is the share of replayed messages whose decision would change in any way; a gate
refuses a candidate when it is above the allowed share, or when the conversation tests fail
(`gate`). Commands (`/human`, `/start`) are not replayed: no model decides them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

SAMPLES = 5  # examples shown per kind of change
MOST_TEXTS = 20_000  # distinct texts replayed at most: the most frequent
# Texts decided by both versions in turn: the second finds what the first just computed for the same texts still at
# hand (the knowledge base keeps the latest questions' embeddings), and no version holds 20,000 results at once.
CHUNK = 256


class Choice(StrEnum):
    ANSWER = "answer"
    SUGGEST = "suggest"
    FALLBACK = "fallback"
    ESCALATE = "escalate"


DECLINES = (Choice.SUGGEST, Choice.FALLBACK)


@dataclass(frozen=True)
class BotDecision:
    """What the bot would do with one message: `answer` names the FAQ entry or article (`intent:NAME` for an
    intent's own reply); `suggestions` the ids offered instead of an answer."""

    choice: Choice
    answer: str = ""
    suggestions: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.choice == Choice.ANSWER:
            return f"answer {self.answer}"
        if self.choice == Choice.SUGGEST:
            return f"suggest {', '.join(self.suggestions)}"
        return str(self.choice)


class Change(StrEnum):
    ANSWER_TO_DECLINE = "answer_to_decline"
    DECLINE_TO_ANSWER = "decline_to_answer"
    ANSWER_CHANGED = "answer_changed"  # answer A -> answer B
    ESCALATION_ADDED = "escalation_added"
    ESCALATION_REMOVED = "escalation_removed"
    SUGGESTIONS_CHANGED = "suggestions_changed"  # other suggestions, or suggestions <-> the fallback


def change(serving: BotDecision, candidate: BotDecision) -> Change | None:
    """How the customer's outcome would change; None when it would not."""
    if serving == candidate:
        return None
    if (serving.choice == Choice.ESCALATE) != (candidate.choice == Choice.ESCALATE):
        return Change.ESCALATION_ADDED if candidate.choice == Choice.ESCALATE else Change.ESCALATION_REMOVED
    if serving.choice == Choice.ANSWER and candidate.choice == Choice.ANSWER:
        return Change.ANSWER_CHANGED
    if serving.choice == Choice.ANSWER:
        return Change.ANSWER_TO_DECLINE
    if candidate.choice == Choice.ANSWER:
        return Change.DECLINE_TO_ANSWER
    return Change.SUGGESTIONS_CHANGED


Decide = Callable[[list[str]], list[BotDecision]]  # texts -> the decisions of one version, in order


@dataclass
class ReplayReport:
    days: int
    messages: int = 0  # replayed, counted as often as each text came
    texts: int = 0  # distinct texts replayed
    changed: int = 0  # messages whose decision would change
    changes: Counter[str] = field(default_factory=Counter)  # Change -> messages
    samples: dict[str, list[dict]] = field(default_factory=dict)  # Change -> the most frequent examples

    @property
    def changed_share(self) -> float:
        return round(self.changed / self.messages, 4) if self.messages else 0.0

    def to_dict(self) -> dict:
        return {"days": self.days, "messages": self.messages, "texts": self.texts, "changed": self.changed,
                "changed_share": self.changed_share, "changes": {c.value: self.changes[c] for c in Change},
                "samples": self.samples}


def replay(asked: Counter[str], serving: Decide, candidate: Decide, *, days: int, samples: int = SAMPLES,
           most: int = MOST_TEXTS) -> ReplayReport:
    """Every text in `asked` (text -> times) through both versions; see the module docstring."""
    texts = [(text, count) for text, count in asked.most_common(most) if text and not text.startswith("/")]
    report = ReplayReport(days, messages=sum(count for _, count in texts), texts=len(texts))
    decided = []
    for start in range(0, len(texts), CHUNK):  # both versions in turn, a chunk at a time (see CHUNK)
        chunk = texts[start:start + CHUNK]
        words = [text for text, _ in chunk]
        decided += zip(chunk, serving(words), candidate(words), strict=True)
    for (text, count), old, new in decided:
        kind = change(old, new)
        if kind is None:
            continue
        report.changed += count
        report.changes[kind] += count
        shown = report.samples.setdefault(kind.value, [])
        if len(shown) < samples:  # most frequent first: `most_common` ordered them
            shown.append({"text": text, "count": count, "serving": str(old), "candidate": str(new)})
    return report


@dataclass(frozen=True)
class GateVerdict:
    """A gate's answer on a candidate: `reasons` is empty when it may go live."""

    reasons: tuple[str, ...]
    max_changed_share: float

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reasons": list(self.reasons), "max_changed_share": self.max_changed_share}


def gate(report: ReplayReport, tests: dict | None, max_changed_share: float) -> GateVerdict:
    """Refuse when the conversation tests failed (`tests`: `{"passed", "failed", "failures"}` as the command
    reports them, None where none ran) or when more than `max_changed_share` of replayed messages would change."""
    reasons = []
    if tests and tests.get("failed"):
        names = ", ".join(str(name) for name in tests.get("failures", [])[:5])
        reasons.append(f"{tests['failed']} conversation test(s) failed: {names}")
    if report.changed_share > max_changed_share:
        reasons.append(f"{report.changed} of {report.messages} replayed messages ({report.changed_share:.1%}) "
                       f"would get another decision; at most {max_changed_share:.1%} may")
    return GateVerdict(tuple(reasons), max_changed_share)

