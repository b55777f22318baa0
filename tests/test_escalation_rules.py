"""Each escalation rule triggers on the input it names, and not otherwise."""

from bot.escalation import EscalationRules

RULES = EscalationRules(negative_threshold=0.85, window=4, window_negative=0.5, window_share=0.75,
                        max_fallbacks=3)
CALM = dict(negative=0.1, trail=[0.1, 0.1, 0.1, 0.1], intent="order_status", fallbacks=0)


def test_calm_conversation_does_not_escalate():
    assert RULES.reason(**CALM) is None


def test_one_very_negative_message():
    assert RULES.reason(**{**CALM, "negative": 0.9, "trail": [0.1, 0.9]}) == "negative_message"
    assert RULES.reason(**{**CALM, "negative": 0.84, "trail": [0.1, 0.84]}) is None


def test_mostly_negative_window():
    assert RULES.reason(**{**CALM, "negative": 0.6, "trail": [0.1, 0.6, 0.7, 0.6, 0.6]}) == "negative_trend"
    assert RULES.reason(**{**CALM, "negative": 0.6, "trail": [0.6, 0.1, 0.7, 0.2, 0.6]}) is None
    assert RULES.reason(**{**CALM, "negative": 0.6, "trail": [0.6, 0.7, 0.6]}) is None  # window not full yet


def test_asking_for_a_human():
    assert RULES.reason(**{**CALM, "intent": "human_agent"}) == "asked_for_human"


def test_repeated_fallbacks():
    assert RULES.reason(**{**CALM, "fallbacks": 3}) == "repeated_fallbacks"
    assert RULES.reason(**{**CALM, "fallbacks": 2}) is None
