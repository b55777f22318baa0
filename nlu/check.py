"""A candidate model against the serving one, before customers meet it (`frontdesk model check`).

Two measures, on what the team has actually seen:
* accuracy on labelled items (the review inbox's intent labels): how many each model gets
  right, and examples of what the candidate fixes and what it breaks;
* on recent messages (the review inbox's texts), how many would change decision (answer,
  suggest, fallback, escalate: `decide` is the bot's rule, handed in by the wiring layer)
  or intent, with examples.
A deploy refuses a candidate that gets fewer labelled items right unless forced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Predict = Callable[[Sequence[str]], list]  # texts -> NluResults
# (texts, their NluResults) -> what the bot would do with each: compared with ==, shown with str()
Decide = Callable[[list[str], list], list]
EXAMPLES = 5


def _accuracy(correct: int, n: int) -> float | None:
    return round(correct / n, 4) if n else None


def compare(serving: Predict, candidate: Predict, labelled: Sequence[tuple[str, str]], recent: Sequence[str],
            decide: Decide | None = None, *, serving_version: str = "", candidate_version: str = "",
            examples: int = EXAMPLES) -> dict:
    """The comparison as a JSON-ready dict (see the module docstring)."""
    texts = [t for t, _ in labelled]
    gold = [g for _, g in labelled]
    before, after = (serving(texts), candidate(texts)) if texts else ([], [])
    fixed, broken = [], []
    for text, label, old, new in zip(texts, gold, before, after, strict=True):
        if old.intent != label and new.intent == label:
            fixed.append({"text": text, "label": label, "serving": old.intent, "candidate": new.intent})
        elif old.intent == label and new.intent != label:
            broken.append({"text": text, "label": label, "serving": old.intent, "candidate": new.intent})
    serving_correct = sum(r.intent == g for r, g in zip(before, gold, strict=True))
    candidate_correct = sum(r.intent == g for r, g in zip(after, gold, strict=True))

    recent = list(recent)
    old_recent, new_recent = (serving(recent), candidate(recent)) if recent else ([], [])
    old_decisions = decide(recent, old_recent) if decide and recent else [r.intent for r in old_recent]
    new_decisions = decide(recent, new_recent) if decide and recent else [r.intent for r in new_recent]
    changed, intent_changed, shown = 0, 0, []
    for text, old, new, old_decision, new_decision in zip(recent, old_recent, new_recent, old_decisions,
                                                          new_decisions, strict=True):
        intent_changed += old.intent != new.intent
        if old_decision != new_decision:
            changed += 1
            if len(shown) < examples:
                shown.append({"text": text, "serving": {"intent": old.intent, "decision": str(old_decision)},
                              "candidate": {"intent": new.intent, "decision": str(new_decision)}})
    return {
        "serving": serving_version, "candidate": candidate_version,
        "labelled": {"n": len(texts), "serving_correct": serving_correct, "candidate_correct": candidate_correct,
                     "serving_accuracy": _accuracy(serving_correct, len(texts)),
                     "candidate_accuracy": _accuracy(candidate_correct, len(texts)),
                     "fixed": fixed[:examples], "broken": broken[:examples]},
        "recent": {"n": len(recent), "decision_changed": changed, "intent_changed": intent_changed,
                   "examples": shown},
        "worse": candidate_correct < serving_correct,
    }
