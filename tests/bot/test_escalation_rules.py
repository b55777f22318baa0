"""Each escalation rule triggers on the input it names, and not otherwise."""

from bot.escalation_rules import EscalationRules

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


def test_calibrated_line_keeps_calm_messages_below_it_and_catches_angry_ones():
    calm = [0.05 * (i % 10) for i in range(98)] + [0.91, 0.93]  # two calm messages the model reads as negative
    angry = [0.95, 0.97, 0.99, 0.92, 0.6]
    rules = EscalationRules().calibrated(calm, angry, max_false=0.01)
    assert sum(p >= rules.negative_threshold for p in calm) <= 1
    assert 0.91 < rules.negative_threshold < 0.92  # one calm message (1 %) may sit above it, not two
    assert [rules.reason(**{**CALM, "negative": p, "trail": [p]}) for p in angry] == [
        "negative_message", "negative_message", "negative_message", "negative_message", None]
    assert "100 calm/impatient and 5 angry" in rules.method


def test_calibration_never_drops_the_line_below_the_floor_and_needs_enough_messages():
    from bot.escalation_rules import FLOOR

    assert EscalationRules().calibrated([0.1] * 50, [0.9]).negative_threshold == FLOOR
    assert EscalationRules().calibrated([0.1] * 5, [0.9]) == EscalationRules()


def test_mildly_negative_gets_an_apology_not_a_person():
    rules = EscalationRules(negative_threshold=0.9, apology_threshold=0.5)
    assert rules.apologise(0.7) and not rules.apologise(0.3) and not rules.apologise(0.95)
    assert rules.reason(**{**CALM, "negative": 0.7, "trail": [0.7]}) is None
