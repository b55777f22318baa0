"""The bot's events reach Prometheus through the typed observer, ratings included."""

from __future__ import annotations

from prometheus_client import REGISTRY

from adapters.runtime.metrics import MetricsObserver
from bot.events import FaqOutcome, Stage


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_bot_event_is_counted_and_ratings_are_no_longer_dropped():
    observer = MetricsObserver()  # an observer missing an event could not be built (bot.events)
    before = {"rating": sample("frontdesk_csat_ratings_total", rating="4", channel="web"),
              "faq": sample("frontdesk_faq_lookups_total", outcome="suggest"),
              "escalation": sample("frontdesk_escalations_total", reason="asked_for_human", channel="web")}
    observer.rating(4, "web")
    observer.faq(FaqOutcome.SUGGEST)
    observer.escalation("asked_for_human", "web")
    assert sample("frontdesk_csat_ratings_total", rating="4", channel="web") == before["rating"] + 1
    assert sample("frontdesk_faq_lookups_total", outcome="suggest") == before["faq"] + 1
    assert sample("frontdesk_escalations_total", reason="asked_for_human", channel="web") == before["escalation"] + 1


def test_message_stage_times_land_in_their_histogram():
    observer = MetricsObserver()
    count = sample("frontdesk_message_stage_seconds_count", stage="retrieve")
    total = sample("frontdesk_message_stage_seconds_sum", stage="retrieve")
    observer.stage(Stage.RETRIEVE, 0.004)
    assert sample("frontdesk_message_stage_seconds_count", stage="retrieve") == count + 1
    assert abs(sample("frontdesk_message_stage_seconds_sum", stage="retrieve") - (total + 0.004)) < 1e-9
    assert sample("frontdesk_message_stage_seconds_bucket", stage="retrieve", le="0.005") >= 1
    assert {str(s) for s in Stage} == {"intake", "lease", "classify", "retrieve", "decide", "commit", "deliver"}
