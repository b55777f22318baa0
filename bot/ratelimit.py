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

# KEYS: this window's count, the previous window's, [the message's mark]. ARGV: TTL. {count now, previous}.
# With a mark, a message already counted (handled again after a crash) is not counted twice.
_COUNT = """
if #KEYS == 3 and not redis.call('set', KEYS[3], 1, 'NX', 'EX', ARGV[1]) then
  return {tonumber(redis.call('get', KEYS[1]) or 0), redis.call('get', KEYS[2])}
end
local count = redis.call('incr', KEYS[1])
redis.call('expire', KEYS[1], ARGV[1])
return {count, redis.call('get', KEYS[2])}
"""


class RateLimiter:
    def __init__(self, client: redis.Redis, keys: Keys, *, limit: int = 20, window: float = 60.0):
        self.redis = client
        self.keys = keys
        self.limit = limit
        self.window = window
        self._count = client.register_script(_COUNT)

    def allow(self, channel: str, user_id: str, now: float | None = None, uid: str = "") -> bool:
        """Count one message from this customer; False when they are over the limit.

        With the message's `uid`, a message handled again (its worker died) is counted once:
        the count and a per-message mark are one Lua step in the customer's slot.
        """
        if self.limit <= 0:
            return True
        now = time.time() if now is None else now
        slot = int(now // self.window)
        current = self.keys.rate(channel, user_id, slot)
        ttl = int(self.window * 2) + 1
        marks = [self.keys.rate(channel, user_id, f"m:{uid}")] if uid else []
        count, previous = self._count(keys=[current, self.keys.rate(channel, user_id, slot - 1), *marks], args=[ttl])
        overlap = 1.0 - (now % self.window) / self.window
        return int(count) + int(previous or 0) * overlap <= self.limit
