"""Background threads that cannot die silently: each runs under a supervisor that restarts it with backoff.

A supervised thread runs a loop body (`body(worker)`) that calls `worker.beat()` each time it has
done a round of useful work and returns when `worker.stopping` (or when its job is done). Any
`Exception` out of the body is logged with the thread's name, the exception's type and where it
was raised (file, line, function: never the message, which may quote a customer's words or a
Redis value), counted, and the body is started again after an exponential backoff (0.25 s
doubling, capped at `max_backoff`, 30 s by default). A round of work (a beat) resets the backoff.

Every supervised thread alive in this process is listed by `threads()` as a `ThreadHealth`:
running, in backoff, restarted and not yet working again, or stale (no beat for `stale_after`
seconds: stuck). The server's readiness monitor reads them for `/readyz` and the Prometheus
gauges; `observers` hear of every failure as it happens (the restart counter). Lives in `common/`
so that `nlu`, `knowledge` and `bot` supervise their threads the same way without importing `adapters`.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 30.0
STALE_AFTER_S = 60.0


class ThreadState(StrEnum):
    RUNNING = "running"
    BACKOFF = "backoff"  # failed; waiting to be started again
    RECOVERING = "recovering"  # started again after a failure; no round of work done since
    STALE = "stale"  # no beat for longer than its `stale_after`: stuck somewhere


@dataclass(frozen=True)
class ThreadHealth:
    """One supervised thread, as `/readyz` and the metrics see it (no message text: only the error's type)."""

    name: str
    state: ThreadState
    restarts: int
    last_error: str | None  # the exception's type name, e.g. "JSONDecodeError"
    last_error_at: float | None  # wall-clock time of the last failure
    since_beat_s: float
    critical: bool  # the worker cannot serve while this thread is unhealthy (the model's batcher)

    @property
    def healthy(self) -> bool:
        return self.state is ThreadState.RUNNING

    @property
    def reason(self) -> str:
        if self.state is ThreadState.STALE:
            return f"stale: no heartbeat for {self.since_beat_s:.0f} s"
        return f"{self.state}: last error {self.last_error} ({self.restarts} restart(s))"


Body = Callable[["Supervised"], None]
observers: list[Callable[[ThreadHealth], None]] = []  # called on every failure (adapters/runtime/metrics.py)
_live: dict[int, Supervised] = {}
_live_lock = threading.Lock()


def threads() -> list[ThreadHealth]:
    """Every supervised thread alive in this process, by name."""
    with _live_lock:
        workers = list(_live.values())
    return sorted((w.health() for w in workers), key=lambda h: h.name)


class Supervised:
    """A daemon thread running `body(self)` until it returns or `stop` is set, restarted after any failure."""

    def __init__(self, name: str, body: Body, *, stop: threading.Event | None = None,
                 stale_after: float = STALE_AFTER_S, max_backoff: float = MAX_BACKOFF_S, critical: bool = False):
        self.name = name
        self.body = body
        self.stale_after = stale_after
        self.max_backoff = max_backoff
        self.critical = critical
        self._stop = stop if stop is not None else threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._mu = threading.Lock()
        self._beat_at = time.monotonic()
        self._failures = 0  # since the last beat
        self._restarts = 0
        self._backoff_until: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None

    # ------------------------------------------------------------ the owner's side
    def start(self) -> Supervised:
        with _live_lock:
            _live[id(self)] = self
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------ the body's side
    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the thread is asked to stop."""
        return self._stop.wait(seconds)

    def beat(self) -> None:
        """A round of work done: the thread is alive and well (and its backoff starts again from the bottom)."""
        self._beat_at = time.monotonic()
        if self._failures:
            with self._mu:
                self._failures = 0

    def health(self) -> ThreadHealth:
        with self._mu:
            now = time.monotonic()
            since = now - self._beat_at
            if self._backoff_until is not None:
                state = ThreadState.BACKOFF
            elif self._failures:
                state = ThreadState.RECOVERING
            elif since > self.stale_after:
                state = ThreadState.STALE
            else:
                state = ThreadState.RUNNING
            return ThreadHealth(self.name, state, self._restarts, self._last_error, self._last_error_at,
                                since, self.critical)

    # ------------------------------------------------------------ the supervisor
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.body(self)
                    return  # the body ended by itself: asked to stop, or its job is done
                except Exception as exc:  # anything: the point is that this thread never dies of it
                    delay = self._failed(exc)
                self._stop.wait(delay)
                with self._mu:
                    self._backoff_until = None
                    self._beat_at = time.monotonic()  # alive again; staleness counts from here
        finally:
            with _live_lock:
                _live.pop(id(self), None)

    def _failed(self, exc: Exception) -> float:
        with self._mu:
            self._failures += 1
            self._restarts += 1
            self._last_error, self._last_error_at = type(exc).__name__, time.time()
            delay = min(self.max_backoff, FIRST_BACKOFF_S * 2 ** (self._failures - 1))
            self._backoff_until = time.monotonic() + delay
        frames = traceback.extract_tb(exc.__traceback__)
        where = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames[-4:]))
        # Type and place only: an exception's message can quote a customer's text or a value read from Redis.
        log.error("background thread %s failed (%s at %s); restarting in %.2f s (restart %d)",
                  self.name, type(exc).__name__, where, delay, self._restarts)
        health = self.health()
        for observer in list(observers):
            try:
                observer(health)
            except Exception:  # a metrics hook must not stop the restart
                log.error("background thread %s: a failure observer failed", self.name)
        return delay


def every(interval: float | Callable[[], float], step: Callable[[], object]) -> Body:
    """A body that runs `step()` every `interval` seconds (a number, or a function giving the next wait)."""

    def body(worker: Supervised) -> None:
        while not worker.wait(interval() if callable(interval) else interval):
            step()
            worker.beat()

    return body
