"""Side effects as typed values (`bot.effects`) and the typed observer (`bot.events`)."""

from __future__ import annotations

import pytest

from bot.effects import (
    AnnounceEscalation,
    CountAnswer,
    CountAnswered,
    CountEscalation,
    CountFallback,
    CountIntent,
    CountMessage,
    CountRatedLow,
    CountRating,
    CountReopened,
    CountStaffed,
    CountTopic,
    Effect,
    RelayToAgent,
)
from bot.events import BotObserver, QuietObserver

EVERY_KIND = [CountMessage("rest:a"), CountIntent("greet"), CountAnswer(), CountFallback("what?"),
              CountEscalation("rest:a"), CountRating("sam", 4),
              CountAnswered("rest:a", "shipping-costs", "intent:ship"), CountAnswered("rest:a", "intent:hours"),
              CountTopic("rest:a", "intent:refund"),
              CountReopened("rest:a", "2026-03-02"), CountStaffed("rest:a"), CountRatedLow("rest:a"),
              AnnounceEscalation("e1"),
              RelayToAgent("e1", "rest:a", "sam", "hello?", "u7")]


@pytest.mark.parametrize("effect", EVERY_KIND, ids=lambda e: type(e).__name__)
def test_every_effect_survives_the_outbox_as_itself(effect):
    assert Effect.from_dict(effect.to_dict()) == effect


def test_effects_a_worker_of_the_previous_version_left_behind_still_run():
    """The stored form is the one the version before typed effects wrote."""
    assert Effect.from_dict({"kind": "stats", "op": "csat", "args": ["sam", 5], "external": False}) \
        == CountRating("sam", 5)
    assert Effect.from_dict({"kind": "escalation", "escalation_id": "e9", "external": True}) == AnnounceEscalation("e9")
    assert Effect.from_dict({"kind": "relay", "escalation_id": None, "conversation": "rest:b", "agent": None,
                             "text": "hi", "external": True}) == RelayToAgent("", "rest:b", "", "hi")
    assert [e.external for e in EVERY_KIND] == [False] * 12 + [True] * 2


def test_an_unknown_effect_is_named_not_guessed():
    with pytest.raises(ValueError, match="unknown statistics effect 'teleport'"):
        Effect.from_dict({"kind": "stats", "op": "teleport", "args": []})
    with pytest.raises(ValueError, match="unknown side effect 'email'"):
        Effect.from_dict({"kind": "email"})


def test_an_observer_that_misses_an_event_cannot_be_built():
    class Forgetful(BotObserver):  # handles every event but ratings
        def message(self, channel): ...
        def intent(self, intent, channel): ...
        def faq(self, outcome): ...
        def fallback(self, channel, text_length): ...
        def escalation(self, reason, channel): ...
        def rate_limited(self, channel): ...
        def redis_error(self): ...

    with pytest.raises(TypeError, match="rating"):
        Forgetful()
    QuietObserver()  # the default handles them all
