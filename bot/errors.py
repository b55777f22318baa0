"""What "Redis is unavailable" looks like to the bot, whichever Redis deployment it runs on.

redis-py's cluster client raises some of its failures (`SlotNotCoveredError` while slots move or a
master is down, other `RedisClusterException`s) from `Exception` rather than `RedisError`, so code
that means "Redis did not answer" catches this tuple, and a cluster hiccup is the same apology or
503 as a single Redis restarting, not a 500. A Redis at its `maxmemory` refusing writes
(`refused_write`) is one of these too: the customer gets the same apology, the operator a metric of its own.
"""

from __future__ import annotations

import redis
from redis.exceptions import OutOfMemoryError, RedisClusterException, ResponseError

REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)


def refused_write(exc: BaseException) -> bool:
    """Whether Redis refused a write because it is at its `maxmemory` (policy noeviction): an OOM error,
    whether redis-py read it as `OutOfMemoryError` or, raised by a command inside a Lua script, Redis 6
    wrapped it in a plain script error."""
    return isinstance(exc, OutOfMemoryError) or (isinstance(exc, ResponseError)
                                                 and "OOM command not allowed" in str(exc))
