"""How two versions' decisions are told apart, counted over real traffic and judged by a gate (`bot.replay`)."""

from __future__ import annotations

from collections import Counter

import pytest

from bot.replay import BotDecision, Change, Choice, change, gate, replay

ANSWER_A = BotDecision(Choice.ANSWER, "delivery-time")
ANSWER_B = BotDecision(Choice.ANSWER, "shipping-cost")
SUGGEST = BotDecision(Choice.SUGGEST, suggestions=("delivery-time", "shipping-cost"))
FALLBACK = BotDecision(Choice.FALLBACK)
ESCALATE = BotDecision(Choice.ESCALATE)


@pytest.mark.parametrize(("serving", "candidate", "expected"), [
    (ANSWER_A, ANSWER_A, None),
    (ANSWER_A, ANSWER_B, Change.ANSWER_CHANGED),
    (ANSWER_A, FALLBACK, Change.ANSWER_TO_DECLINE),
    (ANSWER_A, SUGGEST, Change.ANSWER_TO_DECLINE),  # suggestions decline to answer too
    (SUGGEST, ANSWER_A, Change.DECLINE_TO_ANSWER),
    (FALLBACK, ESCALATE, Change.ESCALATION_ADDED),
    (ESCALATE, ANSWER_A, Change.ESCALATION_REMOVED),
    (SUGGEST, FALLBACK, Change.SUGGESTIONS_CHANGED),
    (SUGGEST, BotDecision(Choice.SUGGEST, suggestions=("delivery-time",)), Change.SUGGESTIONS_CHANGED),
])
def test_each_kind_of_change_is_named(serving, candidate, expected):
    assert change(serving, candidate) == expected


def test_a_replay_counts_each_text_as_often_as_it_came_and_shows_the_most_frequent():
    asked = Counter({"where is my parcel": 5, "how much is shipping": 3, "hello": 2, "/human": 4, "refund": 1})
    serving = {"where is my parcel": ANSWER_A, "how much is shipping": ANSWER_B, "hello": ANSWER_A,
               "refund": FALLBACK}
    candidate = {**serving, "where is my parcel": FALLBACK, "how much is shipping": ANSWER_A}
    seen = []

    def decide(table):
        def run(texts):
            seen.append(list(texts))
            return [table[t] for t in texts]
        return run

    report = replay(asked, decide(serving), decide(candidate), days=7, samples=1)
    assert "/human" not in seen[0]  # commands are not replayed: no model decides them
    assert (report.messages, report.texts, report.changed) == (11, 4, 8)
    assert report.changes == {Change.ANSWER_TO_DECLINE: 5, Change.ANSWER_CHANGED: 3}
    assert report.changed_share == round(8 / 11, 4)
    assert report.samples["answer_to_decline"] == [{"text": "where is my parcel", "count": 5,
                                                    "serving": "answer delivery-time", "candidate": "fallback"}]
    assert report.to_dict()["changes"]["escalation_added"] == 0  # every kind listed, zeros included


def test_the_gate_refuses_on_failed_tests_or_too_many_changes_and_says_why():
    report = replay(Counter({"a": 9, "b": 1}), lambda t: [ANSWER_A] * len(t),
                    lambda t: [ANSWER_A if x == "a" else FALLBACK for x in t], days=1)  # 10 % changed
    assert gate(report, None, 0.10).passed
    over = gate(report, None, 0.05)
    assert not over.passed and "1 of 10 replayed messages (10.0%)" in over.reasons[0]
    failing = gate(report, {"passed": 3, "failed": 1, "failures": ["refund asked (t.yaml:4, step 2)"]}, 0.5)
    assert not failing.passed and failing.reasons == ("1 conversation test(s) failed: refund asked (t.yaml:4, step 2)",)
    assert gate(report, {"passed": 4, "failed": 0, "failures": []}, 0.10).to_dict() == {
        "passed": True, "reasons": [], "max_changed_share": 0.10}


def test_what_the_bot_would_do_is_what_it_does_in_a_fresh_conversation(redis_url, redis_prefix, demo_engine, demo_kb):
    """`decisions_for` (what replays and shadow models compare) must not drift from how the bot really answers."""
    from tests.bot.test_bot import make_bot, say

    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb)
    texts = ["how much does standard shipping cost?", "hello!", "what is the boiling point of tungsten",
             "can i pay with paypal", "this is the third time my order is late, absolutely unacceptable",
             "do you ship", "where is my order"]
    decided = bot.decisions_for(texts, demo_engine.predict(texts))
    for i, (text, decision) in enumerate(zip(texts, decided, strict=True)):
        [*_, reply] = say(bot, text, conversation=f"fresh-{i}")  # an apology may come first
        if decision.choice == Choice.ANSWER and decision.answer.startswith("intent:"):
            assert reply.source is None and not reply.suggestions, (text, decision, reply)
        elif decision.choice == Choice.ANSWER:
            assert reply.source is not None and reply.source.id == decision.answer, (text, decision, reply)
        elif decision.choice == Choice.SUGGEST:
            assert [s.id for s in reply.suggestion_sources] == list(decision.suggestions), (text, decision, reply)
        else:  # the fallback or a person: no answer, no suggestions of the knowledge base's
            escalated = bot.store.meta(f"rest:fresh-{i}").get("status") == "escalated"
            assert escalated == (decision.choice == Choice.ESCALATE) and reply.source is None, (text, decision)
    assert {d.choice for d in decided} >= {Choice.ANSWER, Choice.FALLBACK}  # the texts cover more than one path
