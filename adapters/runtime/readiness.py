"""The readiness a background monitor keeps, which `/readyz` reads without waiting on anything.

`/readyz` runs on the event loop. Checking there (a Redis PING a stalled server holds for seconds
per retry) made five probes time out `/healthz` on the same worker, and liveness restarts spread.
Here a supervised thread ("readiness") checks every `INTERVAL_S`: the parts `Components.missing`
names, Redis with a PING that gets at most `PING_TIMEOUT_S` (one PING in flight at a time, on a
thread of its own; one still waiting counts as Redis missing), and it records the result and the
`frontdesk_ready` gauges. `/readyz` answers from the last result; one older than `STALE_AFTER_S`
(the monitor itself stuck or failing) is not ready, with "readiness" named.

Background threads (common.supervise) are reported beside it: a thread in backoff, restarted and
not working yet, or stale is named under `degraded` with its state, last error type and restart
count. Only a critical one (the model's batcher: every prediction waits on it) makes the worker
not ready; the others leave it serving, named (a poison message on a shared channel must not take
every worker out of the load balancer at once).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from adapters.runtime import metrics
from common import supervise
from common.supervise import Supervised

INTERVAL_S = 1.0
PING_TIMEOUT_S = 1.0
STALE_AFTER_S = 5.0


@dataclass(frozen=True)
class Readiness:
    """What `/readyz` answers: `ready` decides 200 or 503; the rest says why."""

    ready: bool
    missing: list[str]
    errors: dict[str, str] = field(default_factory=dict)
    degraded: dict[str, str] = field(default_factory=dict)  # thread name -> its state, last error, restarts

    def body(self) -> dict:
        return {"ready": self.ready, "missing": self.missing, "errors": self.errors, "degraded": self.degraded}


@dataclass(frozen=True)
class _Checked:
    missing: tuple[str, ...]
    at: float  # time.monotonic()


class ReadinessMonitor:
    """Checks a `Components` in the background; `current()` reads the last result (never blocks)."""

    def __init__(self, components, interval: float = INTERVAL_S):
        self.components = components
        self.interval = interval
        self._last: _Checked | None = None
        self._pinger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness-ping")
        self._ping: Future | None = None
        self._lock = threading.Lock()
        self._worker: Supervised | None = None

    def start(self, stop: threading.Event) -> None:
        for name in metrics.READY_COMPONENTS:  # known from the start: a worker still loading reports 0, not nothing
            metrics.READY.labels(name).set(0)
        self._worker = Supervised("readiness", self._watch, stop=stop, stale_after=STALE_AFTER_S).start()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop(timeout=5)
        self._pinger.shutdown(wait=False, cancel_futures=True)

    def _watch(self, worker: Supervised) -> None:
        while True:
            self.refresh()
            worker.beat()
            if worker.wait(self.interval):
                return

    def refresh(self) -> list[str]:
        """Check now (the monitor's round; the start-up thread's too, once everything has loaded)."""
        missing = self.components.missing(redis_answers=self._redis_answers())
        self._last = _Checked(tuple(missing), time.monotonic())
        metrics.record_readiness(self.components, missing)
        metrics.record_threads(supervise.threads())
        return missing

    def _redis_answers(self) -> bool:
        with self._lock:
            if self._ping is None or self._ping.done():
                self._ping = self._pinger.submit(self.components.redis_ok)
            ping = self._ping
        try:
            return ping.result(timeout=PING_TIMEOUT_S)
        except FutureTimeout:  # still waiting: a stalled Redis is a missing one
            return False

    def current(self) -> Readiness:
        """The last check, with the background threads' health as of now; no I/O."""
        last, now = self._last, time.monotonic()
        errors = dict(self.components.errors)
        if last is not None and now - last.at <= STALE_AFTER_S:
            missing = list(last.missing)
        else:  # not checked yet, or the monitor is stuck: what is known without Redis, and the monitor itself
            missing = [*self.components.missing(redis_answers=False), "readiness"]
            errors["readiness"] = ("not checked yet" if last is None
                                   else f"no readiness check for {now - last.at:.0f} s")
        degraded = {}
        for thread in supervise.threads():
            if not thread.healthy:
                degraded[thread.name] = thread.reason
                if thread.critical and f"thread:{thread.name}" not in missing:
                    missing.append(f"thread:{thread.name}")
                    errors[f"thread:{thread.name}"] = thread.reason
        return Readiness(not missing, missing, {k: v for k, v in errors.items() if k in missing}, degraded)
