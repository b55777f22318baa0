"""Fault injection for background threads: a real Redis client that makes one thread's next commands fail.

`FaultyRedis` is redis-py's own client on a real server; every command goes through unchanged, except that
`arm(thread, error, count)` makes the next `count` commands sent from threads whose name starts with `thread`
raise `error` instead of reaching Redis. That is how the failures the supervisor exists for are produced on
demand in one named thread: a cluster error (redis-py raises `RedisClusterException`, not a `RedisError`,
while slots move) or any other exception a component may raise. Commands queued in a pipeline are not
intercepted (a pipeline sends them itself).
"""

from __future__ import annotations

import threading

import redis


class FaultyRedis(redis.Redis):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._faults: dict[str, tuple[BaseException, int]] = {}
        self._faults_lock = threading.Lock()

    def arm(self, thread: str, error: BaseException, count: int = 1) -> None:
        with self._faults_lock:
            self._faults[thread] = (error, count)

    def left(self, thread: str) -> int:
        """Faults armed for `thread` not raised yet."""
        with self._faults_lock:
            return self._faults.get(thread, (None, 0))[1]

    def execute_command(self, *args, **options):
        name = threading.current_thread().name
        with self._faults_lock:
            for prefix, (error, count) in self._faults.items():
                if count > 0 and name.startswith(prefix):
                    self._faults[prefix] = (error, count - 1)
                    raise error
        return super().execute_command(*args, **options)
