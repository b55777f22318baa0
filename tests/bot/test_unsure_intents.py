"""An unsure guess of small talk or of a request for a person yields to a clear answer, and only to one.

The classifier here reads a set intent and confidence per text (the rule's input); the knowledge base,
the store and the escalation queue are the real ones, so what is checked is what the customer gets.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.escalation_rules import EscalationRules
from bot.replay import Choice
from tests.bot.test_bot import make_bot, say

COVERED = "how much does standard shipping cost?"  # the demo FAQ's shipping-costs entry answers it
UNRELATED = "what is the boiling point of tungsten"  # nothing in the demo knowledge base does
SURE = EscalationRules().sure_intent


class SetIntents:
    """Every text classified as the intent and confidence set for it, calm and in scope."""

    def __init__(self, intents: dict[str, tuple[str, float]]):
        self.intents = intents

    def predict_one(self, text: str):
        intent, confidence = self.intents[text]
        return SimpleNamespace(text=text, intent=intent, confidence=confidence, out_of_scope=False, top_intents=[],
                               sentiment="neutral", sentiment_scores={"negative": 0.05, "neutral": 0.9,
                                                                      "positive": 0.05})

    def predict(self, texts):
        return [self.predict_one(t) for t in texts]


@pytest.mark.parametrize("confidence", [SURE - 0.15, SURE + 0.3])
def test_a_request_for_a_person_escalates_when_sure_and_otherwise_gives_a_clear_answer_with_a_person_offered(
        redis_url, redis_prefix, demo_kb, confidence):
    classifier = SetIntents({COVERED: ("human_agent", confidence), UNRELATED: ("human_agent", confidence)})
    bot, _ = make_bot(redis_url, redis_prefix, classifier, demo_kb)
    answered = say(bot, COVERED, conversation="covered")
    unanswered = say(bot, UNRELATED, conversation="unrelated")
    reasons = sorted(e.reason for e in bot.queue.list())
    if confidence >= SURE:
        assert "colleague" in answered[0].text and "colleague" in unanswered[0].text
        assert reasons == ["asked_for_human", "asked_for_human"]
    else:
        assert "$5.95" in answered[0].text and answered[0].source.id == "shipping-costs"
        assert answered[0].suggestions == ("Talk to a person",)  # one click from the person they may have meant
        assert bot.store.meta("rest:covered").get("status", "bot") == "bot"
        # No clear answer: what might be a request for a person is taken as one.
        assert "colleague" in unanswered[0].text and reasons == ["asked_for_human"]
    decided = bot.responder.decisions_for([COVERED, UNRELATED], classifier.predict([COVERED, UNRELATED]))
    assert [d.choice for d in decided] == ([Choice.ESCALATE, Choice.ESCALATE] if confidence >= SURE
                                           else [Choice.ANSWER, Choice.ESCALATE])


@pytest.mark.parametrize("confidence", [SURE - 0.15, SURE + 0.3])
def test_unsure_small_talk_yields_to_a_clear_answer(redis_url, redis_prefix, demo_kb, confidence):
    classifier = SetIntents({COVERED: ("bot_capabilities", confidence), UNRELATED: ("bot_capabilities", confidence)})
    bot, _ = make_bot(redis_url, redis_prefix, classifier, demo_kb)
    capabilities = bot.templates.say("bot_capabilities")
    answered = say(bot, COVERED, conversation="covered")
    unanswered = say(bot, UNRELATED, conversation="unrelated")
    assert answered[0].text == capabilities if confidence >= SURE else "$5.95" in answered[0].text
    assert unanswered[0].text == capabilities  # no answer to yield to: the small talk stands
    decided = bot.responder.decisions_for([COVERED, UNRELATED], classifier.predict([COVERED, UNRELATED]))
    assert [(d.choice, d.answer) for d in decided] == (
        [(Choice.ANSWER, "intent:bot_capabilities")] * 2 if confidence >= SURE
        else [(Choice.ANSWER, "shipping-costs"), (Choice.ANSWER, "intent:bot_capabilities")])
    assert bot.queue.list() == []
