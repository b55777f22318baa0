"""The micro-batcher outlives callers that give up and observers that fail."""

from __future__ import annotations

import threading

from nlu.batching import MicroBatcher


def test_a_cancelled_caller_costs_no_model_time_and_the_batcher_keeps_serving():
    started, release, seen = threading.Event(), threading.Event(), []

    def fn(items):
        seen.append(list(items))
        if items == ["first"]:
            started.set()
            release.wait(10)
        return [f"done {x}" for x in items]

    batcher = MicroBatcher(fn, max_batch=8, max_wait_ms=1)
    try:
        first = batcher.submit(["first"])
        assert started.wait(10)  # the first batch is running; the next request waits in the queue
        gave_up = batcher.submit(["gave up"])
        assert gave_up.cancel()  # what an awaiting task's cancellation does to its future
        release.set()
        assert first.result(timeout=10) == ["done first"]
        assert batcher.submit(["later"]).result(timeout=10) == ["done later"]  # the thread is alive
        assert ["gave up"] not in seen
    finally:
        batcher.close()


def test_a_failing_batch_observer_does_not_stop_the_batcher():
    def observer(size, seconds):
        raise RuntimeError("metrics backend down")

    batcher = MicroBatcher(lambda items: [x * 2 for x in items], max_wait_ms=1, on_batch=observer)
    try:
        assert batcher.submit([1]).result(timeout=10) == [2]
        assert batcher.submit([2, 3]).result(timeout=10) == [4, 6]
    finally:
        batcher.close()
