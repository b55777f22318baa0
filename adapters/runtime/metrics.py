"""Prometheus metrics. Defined here, at the outermost layer; inner layers report through hooks.

Names follow Prometheus' conventions: base units in the name (`_seconds`), `_total` on counters, `_info` on
gauges that carry their value in labels. Under `frontdesk serve --workers N` every worker records into
memory-mapped files in PROMETHEUS_MULTIPROC_DIR (made fresh per start by serving.py) and a scrape,
answered by any one worker, reports the sum over all of them (`render`). Counters and histograms add up;
each gauge states how its workers' values combine (`multiprocess_mode`, ignored with one worker).
"""

from __future__ import annotations

import glob
import os
import threading
from importlib import metadata

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from bot.events import BotObserver, FaqOutcome, Stage
from common import supervise
from common.supervise import ThreadHealth

# Decided once, like prometheus_client itself decides at import whether values live in files.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
READY_COMPONENTS = ("model", "index", "redis", "bot")

REQUEST_LATENCY = Histogram(
    "frontdesk_http_request_duration_seconds", "HTTP request latency", ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NLU_BATCH_SIZE = Histogram(
    "frontdesk_nlu_batch_size", "Texts per model forward pass", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
NLU_BATCH_SECONDS = Histogram(
    "frontdesk_nlu_batch_duration_seconds", "Model time per batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
NLU_PREDICTIONS = Counter("frontdesk_nlu_predictions_total", "Texts classified", ["intent"])
# livemin: 1 only when every running worker has the component; a worker still loading, or one that lost
# Redis, pulls it to 0. Set from the readiness monitor's checks (adapters/runtime/readiness.py), every second.
READY = Gauge("frontdesk_ready", "1 when every worker has this component (model, index, redis, bot) ready",
              ["component"], multiprocess_mode="livemin")
# livemax: a version is reported while at least one running worker serves it (during a switch, both are).
BUILD_INFO = Gauge("frontdesk_build_info", "Frontdesk version and the model version served",
                   ["version", "model_version"], multiprocess_mode="livemax")
FAQ_VERSION = Gauge("frontdesk_faq_index_info", "Knowledge-base version served", ["version"],
                    multiprocess_mode="livemax")
# frontdesk_model_info{version} 1: the model each worker serves (summed over workers under --workers N).
MODEL_VERSION = Gauge("frontdesk_model_info", "NLU model version served (nlu.versions)", ["version"],
                      multiprocess_mode="livemax")

FAQ_LOOKUPS = Counter("frontdesk_faq_lookups_total", "FAQ lookups by outcome", ["outcome"])
MESSAGES = Counter("frontdesk_messages_total", "Customer messages handled", ["channel"])
INTENTS = Counter("frontdesk_intents_total", "Intents recognised in conversations", ["intent"])
FALLBACKS = Counter("frontdesk_fallbacks_total", "Messages the bot could not answer", ["channel"])
ESCALATIONS = Counter("frontdesk_escalations_total", "Conversations escalated to staff", ["reason", "channel"])
RATE_LIMITED = Counter("frontdesk_rate_limited_total", "Messages refused by the per-customer rate limit", ["channel"])
REDIS_ERRORS = Counter("frontdesk_redis_errors_total", "Messages that met an unavailable Redis")
# A Redis at its maxmemory (policy noeviction) answers reads and refuses writes: the customer gets the same apology
# as for an unavailable one, but nothing is wrong with the connection; an operator must free or add memory.
REDIS_REFUSED_WRITES = Counter("frontdesk_redis_refused_writes_total",
                               "Messages Redis refused to store: it is at its maxmemory (the customer got the apology)")
ESCALATIONS_REFUSED = Counter("frontdesk_escalations_refused_total",
                              "Requests for a person over the escalation limit per customer or per client address",
                              ["scope", "channel"])
ESCALATIONS_EXPIRED = Counter("frontdesk_escalations_expired_total",
                              "Escalations nobody claimed in time (FRONTDESK_ESCALATION_EXPIRE_HOURS)", ["channel"])
# Background threads (common.supervise): 1 while running, 0 while in backoff after a failure, restarted and not
# working yet, or stale; livemin: 0 when any worker's thread of that name is down. Restarts count every failure.
THREAD_UP = Gauge("frontdesk_background_thread_up", "1 while this background thread runs well, per thread",
                  ["thread"], multiprocess_mode="livemin")
THREAD_RESTARTS = Counter("frontdesk_background_thread_restarts_total",
                          "Background thread failures, each followed by a restart with backoff", ["thread"])
# Per handled customer message, the seconds of each stage it went through (bot.events.Stage): intake, lease,
# classify, retrieve, decide, commit, deliver. A stage a message skipped is not observed, so a stage's mean per
# message is its _sum over frontdesk_messages_total (bench/load).
MESSAGE_STAGE_SECONDS = Histogram(
    "frontdesk_message_stage_seconds", "Time a customer message spent in each stage of its handling", ["stage"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RATINGS = Counter("frontdesk_csat_ratings_total", "Satisfaction ratings customers gave after a hand-off",
                  ["rating", "channel"])


def observe_batch(size: int, seconds: float) -> None:
    NLU_BATCH_SIZE.observe(size)
    NLU_BATCH_SECONDS.observe(seconds)


class _InfoGauge:
    """One current label set at 1 for an `_info` gauge; the one it replaces goes (or drops to 0 across workers,
    where prometheus_client cannot remove a label set from the shared files)."""

    def __init__(self, gauge: Gauge):
        self.gauge, self.current, self.lock = gauge, None, threading.Lock()

    def set(self, *labels: str) -> None:
        with self.lock:
            if labels == self.current:
                return
            self.gauge.labels(*labels).set(1)
            if self.current is not None:
                if MULTIPROCESS:
                    self.gauge.labels(*self.current).set(0)
                else:
                    self.gauge.remove(*self.current)
            self.current = labels


_faq_info, _build_info, _model_info = _InfoGauge(FAQ_VERSION), _InfoGauge(BUILD_INFO), _InfoGauge(MODEL_VERSION)


def set_faq_version(version: str) -> None:
    _faq_info.set(version)


def set_model_version(version: str) -> None:
    _model_info.set(version)


def _package_version() -> str:
    try:
        return metadata.version("frontdesk")
    except metadata.PackageNotFoundError:
        return "unknown"


def _model_version(components) -> str | None:
    """The served model's version (`engine.version`, nlu/versions.py; the model directory's name where the
    engine has none); None while no model is loaded, so no placeholder series appears at start-up."""
    engine = components.engine
    if engine is None:
        return None
    try:
        found = getattr(engine, "version", None)
    except AttributeError:  # a predictor without a version
        found = None
    model_dir = components.settings.model_dir
    return str(found) if found else (model_dir.resolve().name if model_dir else "")


def record_readiness(components, missing: list[str]) -> None:
    """Set this worker's `frontdesk_ready` and `frontdesk_build_info` from the readiness monitor's check
    (adapters/runtime/readiness.py, every second: `missing` as `Components.missing` gave it)."""
    for name in dict.fromkeys([*READY_COMPONENTS, *missing]):
        # missing() names the bot only once everything else is there; its own check is that it was built.
        ready = name not in missing and (name != "bot" or components.bot is not None)
        READY.labels(name).set(1 if ready else 0)
    model_version = _model_version(components)
    if model_version is not None:
        _build_info.set(_package_version(), model_version)


_threads_seen: set[str] = set()


def record_threads(threads: list[ThreadHealth]) -> None:
    """`frontdesk_background_thread_up` from the supervised threads' health (a name shared by several
    threads in one process, as in tests, is up only while all of them are). A thread seen before and gone
    now ended by design (the lease renewer between messages, say): not failing, so 1."""
    up = dict.fromkeys(_threads_seen, True)
    for thread in threads:
        up[thread.name] = up.get(thread.name, True) and thread.healthy
    for name, healthy in up.items():
        THREAD_UP.labels(name).set(1 if healthy else 0)
    _threads_seen.update(up)


def _count_failure(thread: ThreadHealth) -> None:
    THREAD_RESTARTS.labels(thread.name).inc()
    THREAD_UP.labels(thread.name).set(0)


supervise.observers.append(_count_failure)  # counted as each failure happens, on the failing thread


def _forget_dead_workers(folder: str) -> None:
    """Drop the live gauges of workers that are gone (uvicorn restarts a dead worker under a new pid)."""
    pids = {os.path.basename(p).rsplit("_", 1)[-1].removesuffix(".db") for p in glob.glob(f"{folder}/gauge_live*.db")}
    for pid in pids:
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            multiprocess.mark_process_dead(int(pid), folder)


def render() -> tuple[bytes, str]:
    """The `/metrics` body: this process's registry, or the sum over every worker's files."""
    if not MULTIPROCESS:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    _forget_dead_workers(folder)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsObserver(BotObserver):
    """The bot's events as Prometheus counters (the bot itself knows nothing of metrics)."""

    def message(self, channel: str) -> None:  # counted once, by the core, for every channel (duplicates excluded)
        MESSAGES.labels(channel).inc()

    def intent(self, intent: str, channel: str) -> None:
        INTENTS.labels(intent).inc()

    def faq(self, outcome: FaqOutcome) -> None:
        FAQ_LOOKUPS.labels(str(outcome)).inc()

    def fallback(self, channel: str, text_length: int) -> None:
        FALLBACKS.labels(channel).inc()

    def escalation(self, reason: str, channel: str) -> None:
        ESCALATIONS.labels(reason, channel).inc()

    def rate_limited(self, channel: str) -> None:
        RATE_LIMITED.labels(channel).inc()

    def redis_error(self) -> None:
        REDIS_ERRORS.inc()

    def redis_refused_write(self) -> None:
        REDIS_REFUSED_WRITES.inc()

    def escalation_refused(self, scope: str, channel: str) -> None:
        ESCALATIONS_REFUSED.labels(scope, channel).inc()

    def escalation_expired(self, channel: str) -> None:
        ESCALATIONS_EXPIRED.labels(channel).inc()

    def rating(self, rating: int, channel: str) -> None:
        RATINGS.labels(str(rating), channel).inc()

    def stage(self, name: Stage, seconds: float) -> None:
        MESSAGE_STAGE_SECONDS.labels(str(name)).observe(seconds)
