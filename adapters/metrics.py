"""Prometheus metrics. Defined here, at the outermost layer; inner layers report through hooks."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

REQUEST_LATENCY = Histogram(
    "frontdesk_http_request_seconds", "HTTP request latency", ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NLU_BATCH_SIZE = Histogram(
    "frontdesk_nlu_batch_size", "Texts per model forward pass", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
NLU_BATCH_SECONDS = Histogram(
    "frontdesk_nlu_batch_seconds", "Model time per batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
NLU_PREDICTIONS = Counter("frontdesk_nlu_predictions_total", "Texts classified", ["intent"])
READY = Gauge("frontdesk_ready", "1 when the model, index and Redis are ready", ["component"])


def observe_batch(size: int, seconds: float) -> None:
    NLU_BATCH_SIZE.observe(size)
    NLU_BATCH_SECONDS.observe(seconds)
FAQ_VERSION = Info("frontdesk_faq_index", "Knowledge-base version served by this process")
FAQ_LOOKUPS = Counter("frontdesk_faq_lookups_total", "FAQ lookups by outcome", ["outcome"])
MESSAGES = Counter("frontdesk_messages_total", "Customer messages handled", ["channel"])
INTENTS = Counter("frontdesk_intents_total", "Intents recognised in conversations", ["intent"])
FALLBACKS = Counter("frontdesk_fallbacks_total", "Messages the bot could not answer", ["channel"])
ESCALATIONS = Counter("frontdesk_escalations_total", "Conversations escalated to staff", ["reason", "channel"])
RATE_LIMITED = Counter("frontdesk_rate_limited_total", "Messages refused by the per-customer rate limit", ["channel"])
REDIS_ERRORS = Counter("frontdesk_redis_errors_total", "Messages that met an unavailable Redis")


def observe_bot_event(name: str, details: dict) -> None:
    """Bridge from the bot's event hook to Prometheus (the bot itself knows nothing of metrics)."""
    if name == "intent":
        INTENTS.labels(details["intent"]).inc()
    elif name == "fallback":
        FALLBACKS.labels(details["channel"]).inc()
    elif name == "escalation":
        ESCALATIONS.labels(details["reason"], details["channel"]).inc()
    elif name == "faq":
        FAQ_LOOKUPS.labels(details["outcome"]).inc()
    elif name == "rate_limited":
        RATE_LIMITED.labels(details["channel"]).inc()
    elif name == "redis_error":
        REDIS_ERRORS.inc()
