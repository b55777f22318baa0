"""Rate limits shared by every worker through Redis: messages per customer, and escalations per customer
and per client address.

A sliding window approximated by two fixed windows (the current one, plus the previous
one weighted by how much of it still overlaps), the way most API gateways do it: one
INCR per message, no per-message entries to store, and no burst of double the limit at
a window edge.

Escalations have limits of their own (`EscalationLimits`): each one reaches a person (a Slack post,
reminders, the console), so a script sending `/human` from fresh customer ids would otherwise bury
the staff desk. Counted per customer and, where the channel knows it (`InboundMessage.client_address`),
per client address, whoever the messages claim to be from.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import redis

from bot.keys import Keys
from bot.messages import InboundMessage

# (channel, subject, slot or "m:UID") -> the key counting it; every key of one subject shares a hash tag.
KeyFor = Callable[[str, str, "int | str"], str]

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


@dataclass(frozen=True)
class SlidingWindow:
    """One moment of a two-window sliding count of `length` seconds: which fixed window it falls in, how long
    a window's counter must live, and what a count there plus the previous window's amounts to."""

    now: float
    length: float

    @property
    def slot(self) -> int:
        return int(self.now // self.length)

    @property
    def ttl(self) -> int:
        """Seconds a window's counter is kept: it still weighs in while the next window runs."""
        return int(self.length * 2) + 1

    def within(self, count: int, previous: int, limit: int) -> bool:
        """Whether `count` in this window and `previous` in the last, weighted by how much of it still
        overlaps the sliding window ending now, come to at most `limit`."""
        overlap = 1.0 - (self.now % self.length) / self.length
        return count + previous * overlap <= limit

    def wait(self) -> float:
        """Seconds until a count over the limit surely falls back: the current window empties at the next slot."""
        return max(1.0, math.ceil((self.slot + 1) * self.length - self.now))


class RateLimiter:
    def __init__(self, client: redis.Redis, keys: Keys, *, limit: int = 20, window: float = 60.0,
                 key: KeyFor | None = None):
        self.redis = client
        self.keys = keys
        self.limit = limit
        self.window = window
        self.key = key or keys.rate  # the customer's message windows, unless this limiter counts something else
        self._count = client.register_script(_COUNT)

    def allow(self, channel: str, user_id: str, now: float | None = None, uid: str = "") -> bool:
        """Count one message from this customer; False when they are over the limit.

        With the message's `uid`, a message handled again (its worker died) is counted once:
        the count and a per-message mark are one Lua step in the customer's slot.
        """
        if self.limit <= 0:
            return True
        window = SlidingWindow(time.time() if now is None else now, self.window)
        marks = [self.key(channel, user_id, f"m:{uid}")] if uid else []
        count, previous = self._count(keys=[self.key(channel, user_id, window.slot),
                                            self.key(channel, user_id, window.slot - 1), *marks], args=[window.ttl])
        return window.within(int(count), int(previous or 0), self.limit)


class LimitScope(StrEnum):
    """Which escalation limit a request for a person was over."""

    CUSTOMER = "customer"
    ADDRESS = "address"


class EscalationLimits:
    """Escalations opened per customer and per client address, each a (count, seconds) sliding window.

    A count of 0 switches that limit off. Every request for a person counts, opened or refused, so
    a customer or address that keeps asking stays refused until it pauses; a message handled twice
    (its worker died) counts once.
    """

    def __init__(self, client: redis.Redis, keys: Keys, *, per_customer: tuple[int, float] = (3, 3600.0),
                 per_address: tuple[int, float] = (20, 3600.0)):
        self.per_customer = RateLimiter(client, keys, limit=per_customer[0], window=per_customer[1],
                                        key=keys.escalation_rate)
        # Across channels: keyed on the address alone (only channels that know the client's address set one).
        self.per_address = RateLimiter(client, keys, limit=per_address[0], window=per_address[1],
                                       key=lambda _channel, address, slot: keys.escalation_address_rate(address, slot))

    def refused(self, message: InboundMessage) -> LimitScope | None:
        """Count this request for a person; the limit it is over, or None when an escalation may open."""
        # The customer's own limit first: a customer asking again and again does not use up their address's.
        if not self.per_customer.allow(message.channel, message.user_id, uid=message.uid):
            return LimitScope.CUSTOMER
        if message.client_address and not self.per_address.allow(message.channel, message.client_address,
                                                                 uid=message.uid):
            return LimitScope.ADDRESS
        return None
