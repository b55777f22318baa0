"""A supervised thread survives any exception, backs off, says how it is doing, and logs no message text."""

from __future__ import annotations

import json
import logging
import threading

from common import supervise
from common.supervise import Supervised, ThreadState, every
from tests.support.fleet import until


def health(worker: Supervised):
    return next(h for h in supervise.threads() if h.name == worker.name)


def test_a_failing_body_is_restarted_with_growing_backoff_and_recovers(caplog):
    secret = "card 4111 1111 1111 1111 of jane@example.com"
    failures, rounds, started = 3, [], []

    def step() -> None:
        if len(started) < failures:
            started.append(1)
            raise json.JSONDecodeError(secret, "{", 0)  # what bad JSON in Redis raises
        rounds.append(1)

    caplog.set_level(logging.ERROR, logger="common.supervise")
    worker = Supervised("test-restarts", every(0.01, step)).start()
    try:
        until(lambda: health(worker).restarts == 1, 5)
        assert health(worker).state in (ThreadState.BACKOFF, ThreadState.RECOVERING)
        assert health(worker).last_error == "JSONDecodeError" and not health(worker).healthy
        until(lambda: len(rounds) >= 3, 10)  # 0.25 + 0.5 + 1 s of backoff, then it works again
        assert health(worker).state is ThreadState.RUNNING and health(worker).restarts == failures
    finally:
        worker.stop()
    assert worker.name not in [h.name for h in supervise.threads()]  # stopped: no longer listed
    lines = [r.getMessage() for r in caplog.records if "test-restarts" in r.getMessage()]
    assert len(lines) == failures
    assert all("JSONDecodeError" in line for line in lines)
    assert [float(line.split("restarting in ")[1].split(" s")[0]) for line in lines] == [0.25, 0.5, 1.0]
    assert not any("4111" in line or "jane" in line or secret in line for line in lines)  # type, never message
    assert all(r.exc_info is None for r in caplog.records)  # no traceback: its last line is the message


def test_backoff_is_capped_and_failures_are_counted_for_the_metrics():
    seen = []
    supervise.observers.append(seen.append)

    def body(worker: Supervised) -> None:
        raise RuntimeError("always")

    worker = Supervised("test-capped", body, max_backoff=0.3).start()
    try:
        until(lambda: health(worker).restarts >= 4, 10)  # 0.25, 0.3, 0.3: capped, or this would take 1.75 s
    finally:
        worker.stop()
        supervise.observers.remove(seen.append)
    mine = [h for h in seen if h.name == "test-capped"]
    assert len(mine) >= 4 and all(h.state is ThreadState.BACKOFF and h.last_error == "RuntimeError" for h in mine)


def test_a_thread_without_a_heartbeat_is_stale_and_a_stop_ends_it():
    release = threading.Event()

    def body(worker: Supervised) -> None:
        worker.beat()
        release.wait(10)  # stuck: no beat while it waits

    worker = Supervised("test-stale", body, stale_after=0.2).start()
    try:
        until(lambda: health(worker).state is ThreadState.STALE, 5)
        assert "no heartbeat" in health(worker).reason
    finally:
        release.set()
        worker.stop()
    assert not worker.is_alive()
