"""Following a fleet-wide desired state in Redis: the loop both live reloads use (the FAQ's and the model's).

One process records what every process should serve and publishes an event; every process
runs a `Follower` thread that catches up on each event and, since pub/sub is fire-and-forget,
on a heartbeat too, then reports what it serves. What "catching up" and "reporting" mean is
the subclass's (`knowledge.sync.ReloadSync`, `nlu.sync.ModelSync`). Lives in `common/`, below both
(it needs only Redis): neither `nlu/` nor `knowledge/` may import `bot/`, and `nlu/` does not import `knowledge/`.
"""

from __future__ import annotations

import contextlib
import threading
import time

import redis

from common.supervise import Supervised


class Follower:
    """A background thread: `catch_up()` and `report()` on every event on `events_channel` and every `heartbeat`."""

    name = "fleet-sync"  # the thread's name, and how the log names this follower

    def __init__(self, client: redis.Redis, heartbeat: float = 2.0):
        self.redis = client
        self.heartbeat = heartbeat
        self._stop = threading.Event()
        self._worker: Supervised | None = None

    @property
    def events_channel(self) -> str:
        raise NotImplementedError

    def catch_up(self) -> None:
        raise NotImplementedError

    def report(self) -> None:
        raise NotImplementedError

    def forget(self) -> None:
        """Remove this process's report when it stops (a stopped worker should not be listed)."""

    def start(self) -> None:
        # Supervised (common.supervise): a lost Redis, a cluster error or a value it cannot read restarts the
        # loop with backoff; it never ends this process's part in the fleet for good.
        self._worker = Supervised(self.name, self._follow, stop=self._stop).start()

    def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            self.forget()

    def _follow(self, worker: Supervised) -> None:
        """One subscription's life: catch up and report on every event and heartbeat, until stopped."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.events_channel)
            self.catch_up()
            self.report()
            worker.beat()
            next_beat = time.monotonic() + self.heartbeat
            while not worker.stopping:
                message = pubsub.get_message(timeout=min(0.5, self.heartbeat))
                if message is not None or time.monotonic() >= next_beat:
                    self.catch_up()
                    self.report()
                    next_beat = time.monotonic() + self.heartbeat
                worker.beat()
        finally:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too; the next one is new
                pubsub.close()
