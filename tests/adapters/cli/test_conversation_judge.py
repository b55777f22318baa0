"""The judge on replies made up here: answers, suggestions, declines and reply text, each failure saying what
came back (no model, no Redis)."""

from __future__ import annotations

from pathlib import Path

from adapters.cli.conversation_tests.judge import Classification, HandOff, Judge, not_understood_texts
from adapters.cli.conversation_tests.spec import parse
from bot.messages import Reply, Source, SourceKind
from bot.templates import Templates

JUDGE = Judge(not_understood_texts(Templates.load()))
FALLBACK = Templates.load().data["fallback"][0]


def step(expect: str):
    [conversation] = parse(f"- name: t\n  steps:\n    - user: hi\n      expect: {expect}\n", Path("t.yaml"))
    return conversation.steps[0]


def faq(entry: str) -> Source:
    return Source(SourceKind.FAQ, entry)


def judged(expect: str, replies: list[Reply], escalated: bool = False) -> list[str]:
    mismatches = JUDGE.step(step(expect), replies, lambda: HandOff(escalated, False),
                            lambda: Classification("greet", "neutral", False))
    return [f"{m.expected} / {m.got}" for m in mismatches]


def test_suggestions_count_as_a_decline_and_are_checked_by_id():
    suggested = [Reply("pick one", suggestions=("a?", "b?"), suggestion_sources=(faq("a"), faq("b")))]
    assert judged("{suggestions: [a], declined: true}", suggested) == []
    assert judged("{suggestions: c}", suggested) == ["suggestions: c / suggested a, b: pick one"]


def test_a_fallback_is_a_decline_and_an_answer_is_not():
    assert judged("{declined: true}", [Reply(FALLBACK)]) == []
    answer = [Reply("It costs $5.95.", source=faq("shipping-costs"))]
    assert judged("{declined: true}", answer) == ["declined: true / not declined: It costs $5.95."]
    assert judged("{answer: [x, shipping-costs], reply_contains: [COSTS, 5.95], reply_matches: '\\$\\d'}",
                  answer) == []


def test_classification_and_hand_off_mismatches_name_the_value():
    assert judged("{intent: thanks, sentiment: neutral, escalated: true}", [Reply("hi")]) == [
        "intent: thanks / intent greet", "escalated: true / not escalated: hi"]
