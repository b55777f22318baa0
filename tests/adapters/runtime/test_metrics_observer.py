"""The bot's events reach Prometheus through the typed observer, ratings included."""

from __future__ import annotations

from prometheus_client import REGISTRY

from adapters.runtime.metrics import MetricsObserver
from bot.events import FaqOutcome


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
