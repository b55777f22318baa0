"""Dynamic micro-batching: many callers' small requests become a few large model calls.

Concurrent callers submit items; one worker thread takes whatever is waiting, up to
`max_batch` items, and calls the batch function once. Under load this turns many one-sentence
forward passes into a few large ones, which is where a CPU (and even more a GPU) gets its
throughput. Used for the NLU model (`nlu.engine`) and for the FAQ's query embeddings
(`knowledge.service`).

The rule for waiting: once a request arrives, the worker waits up to `max_wait_ms` for company
only while requests have lately been arriving closer together than that (a moving average of the
gaps between arrivals, `ARRIVAL_WEIGHT`); otherwise it runs what is queued at once. At a chat's
rate (a message every few tens of milliseconds) no one else would come in the window, so waiting
would only add `max_wait_ms` to every message; under heavy load the batches form while the model
runs, and the wait gathers the stragglers.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from common.supervise import Supervised

log = logging.getLogger(__name__)

BatchObserver = Callable[[int, float], None]  # (items in batch, seconds) -> None
IDLE_BEAT_S = 1.0  # an idle batcher wakes this often to show it is alive
STALE_AFTER_S = 60.0  # no beat for this long (one batch running that long): stuck, and the worker is not ready
ARRIVAL_WEIGHT = 0.2  # the newest gap's weight in the moving average of gaps between arrivals


class BatcherClosed(RuntimeError):
    pass


@dataclass
class _Request:
    items: Sequence[Any]
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Thread-safe batching front of `fn(items) -> results` (one result per item, in order)."""

    def __init__(self, fn: Callable[[list], Sequence], *, max_batch: int = 64, max_wait_ms: float = 2.0,
                 on_batch: BatchObserver | None = None, name: str = "micro-batcher"):
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.name = name
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._closed = False
        self._last_arrival: float | None = None
        self._mean_gap = float("inf")  # seconds between arrivals, moving average (see the module docstring)
        # Supervised (common.supervise): the model's only thread; callers hang if it stops, so it is critical.
        self._worker = Supervised(name, self._serve, stale_after=STALE_AFTER_S, max_backoff=1.0, critical=True).start()

    def submit(self, items: Sequence) -> Future:
        """Queue items; the future resolves to their results, or to the batch function's exception."""
        if self._closed:
            raise BatcherClosed(f"{self.name} is closed")
        request = _Request(list(items))
        if not request.items:
            request.future.set_result([])
            return request.future
        self._note_arrival(time.perf_counter())
        self._queue.put(request)
        return request.future

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._worker.join(timeout=10)

    def _note_arrival(self, now: float) -> None:
        # Callers' threads race here; a lost update only nudges an average, so no lock on the hot path.
        if self._last_arrival is not None:
            # Capped: after an hour's quiet, a burst should not need dozens of arrivals to start batching again.
            gap = min(now - self._last_arrival, 10 * self.max_wait)
            self._mean_gap = gap if self._mean_gap == float("inf") else (
                ARRIVAL_WEIGHT * gap + (1 - ARRIVAL_WEIGHT) * self._mean_gap)
        self._last_arrival = now

    def expects_company(self) -> bool:
        """Whether another request is likely within `max_wait_ms` (then a batch waits for it)."""
        return self._mean_gap < self.max_wait

    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        batch, size = [first], len(first.items)
        deadline = time.perf_counter() + (self.max_wait if self.expects_company() else 0.0)
        while size < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
            size += len(item.items)
        return batch, False

    def _serve(self, worker: Supervised) -> None:
        """Batches until closed. A failure outside the model call fails that batch's callers (none is left
        waiting) and propagates to the supervisor, which starts this loop again."""
        while True:
            worker.beat()
            try:
                first = self._queue.get(timeout=IDLE_BEAT_S)  # wakes to beat while idle: idle is not stuck
            except queue.Empty:
                continue
            if first is None:
                break
            batch, stop = self._collect(first)
            try:
                self._run_batch(batch)
            except Exception as exc:
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                raise
            if stop:
                break
        # Fail whatever is still queued rather than leaving callers waiting forever.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item.future.set_running_or_notify_cancel():
                item.future.set_exception(BatcherClosed(f"{self.name} is closed"))

    def _run_batch(self, batch: list[_Request]) -> None:
        # A caller that gave up (an awaiting task cancelled, which cancels its future) gets no model time,
        # and a running future cannot be cancelled any more: setting its result below cannot fail.
        batch = [request for request in batch if request.future.set_running_or_notify_cancel()]
        if not batch:
            return
        items = [x for request in batch for x in request.items]
        started = time.perf_counter()
        try:
            results = self.fn(items)
        except Exception as exc:  # the callers get the error; the batcher keeps serving
            log.exception("%s: a batch of %d failed", self.name, len(items))
            for request in batch:
                request.future.set_exception(exc)
            return
        if self.on_batch is not None:
            try:
                self.on_batch(len(items), time.perf_counter() - started)
            except Exception:  # an observer failing must not stop the batcher for every later caller
                log.exception("%s: the batch observer failed", self.name)
        offset = 0
        for request in batch:
            n = len(request.items)
            request.future.set_result(results[offset : offset + n])
            offset += n
