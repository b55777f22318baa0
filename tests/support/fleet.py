"""Two (or more) knowledge-base workers that follow each other through Redis, for reload-everywhere tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from knowledge.service import KnowledgeBase
from knowledge.sync import ReloadSync


def until(check: Callable[[], object], seconds: float = 30.0) -> None:
    """Wait for `check()` to be true, failing the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def never(check: Callable[[], object], seconds: float) -> None:
    """Fail as soon as `check()` is true within `seconds`: an absence watched for the whole window, which
    catches the thing happening early or late in it, where one look after a sleep sees only one moment."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not check(), "happened"
        time.sleep(0.02)
    assert not check(), "happened"


@contextmanager
def synced_workers(source: Path, embedder, tmp_path: Path, client: Callable[[], object], prefix: str,
                   count: int = 2) -> Iterator[tuple[list[KnowledgeBase], list[ReloadSync]]]:
    """`count` knowledge bases over `source`, loaded, each following the others through its own Redis client.

    Their heartbeat is beyond any test's patience, so only a published event (`announce`) brings the others
    along. Yields once every worker has reported and subscribed; stops and closes them all after.
    """
    kbs = [KnowledgeBase(source, embedder=embedder, cache_dir=tmp_path / f"cache{i}", use_intents=False)
           for i in range(count)]
    syncs = [ReloadSync(kb, client(), prefix, worker_id=f"w{i}", heartbeat=120) for i, kb in enumerate(kbs)]
    try:
        for kb in kbs:
            assert kb.reload().ok
        for sync in syncs:
            sync.start()
        until(lambda: len(syncs[0].workers()) == count)
        time.sleep(0.5)  # the last worker's subscription is live (it reported after subscribing)
        yield kbs, syncs
    finally:
        for sync in syncs:
            sync.stop()
        for kb in kbs:
            kb.close()
