"""A per-customer message rate limit, shared by every worker through Redis.

A sliding window approximated by two fixed windows (the current one, plus the previous
one weighted by how much of it still overlaps), the way most API gateways do it: one
INCR per message, no per-message entries to store, and no burst of double the limit at
a window edge.
"""

from __future__ import annotations

import time

import redis

from bot.keys import Keys


class RateLimiter:
    def __init__(self, client: redis.Redis, keys: Keys, *, limit: int = 20, window: float = 60.0):
        self.redis = client
        self.keys = keys
        self.limit = limit
        self.window = window

    def allow(self, channel: str, user_id: str, now: float | None = None) -> bool:
        """Count one message from this customer; False when they are over the limit."""
        if self.limit <= 0:
            return True
        now = time.time() if now is None else now
        slot = int(now // self.window)
        current = self.keys.rate(channel, user_id, slot)
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(current)
        pipe.expire(current, int(self.window * 2) + 1)
        pipe.get(self.keys.rate(channel, user_id, slot - 1))
        count, _, previous = pipe.execute()
        overlap = 1.0 - (now % self.window) / self.window
        return count + int(previous or 0) * overlap <= self.limit
