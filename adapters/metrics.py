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
