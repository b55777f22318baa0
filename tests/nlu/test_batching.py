"""The micro-batcher outlives callers that give up and observers that fail, and waits for company only when
some is coming."""

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


def test_a_request_with_nobody_arriving_near_it_runs_at_once_not_after_the_wait():
    batches: list[list[int]] = []
    batcher = MicroBatcher(lambda items: batches.append(list(items)) or list(items), max_wait_ms=1_000)
    try:
        # The first request ever, then two after pauses about as long as the window: each runs as it comes.
        # Had the worker waited the whole window for company, [2] would have taken [3] along.
        assert batcher.submit([1]).result(timeout=10) == [1]
        threading.Event().wait(1.2)
        second = batcher.submit([2])
        threading.Event().wait(0.3)
        assert not batcher.expects_company()
        assert batcher.submit([3]).result(timeout=10) == [3] and second.result(timeout=10) == [2]
        assert batches == [[1], [2], [3]]
    finally:
        batcher.close()


def test_requests_arriving_close_together_wait_for_each_other_and_share_a_batch():
    batches: list[list[str]] = []
    batcher = MicroBatcher(lambda items: batches.append(list(items)) or list(items), max_wait_ms=1_000)
    try:
        burst = [batcher.submit([f"burst {i}"]) for i in range(8)]  # far closer together than the window
        assert batcher.expects_company()
        for done in burst:
            done.result(timeout=10)  # the burst's batch has run: the worker is idle when "a" comes
        first = batcher.submit(["a"])
        threading.Event().wait(0.1)  # well inside the window
        second = batcher.submit(["b"])
        assert first.result(timeout=10) == ["a"] and second.result(timeout=10) == ["b"]
        assert ["a", "b"] in batches  # one forward pass for both
    finally:
        batcher.close()
