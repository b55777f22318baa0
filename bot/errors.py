"""What "Redis is unavailable" looks like to the bot, whichever Redis deployment it runs on.

redis-py's cluster client raises some of its failures (`SlotNotCoveredError` while slots move or a
master is down, other `RedisClusterException`s) from `Exception` rather than `RedisError`, so code
that means "Redis did not answer" catches this tuple, and a cluster hiccup is the same apology or
503 as a single Redis restarting, not a 500.
"""

from __future__ import annotations

import redis
from redis.exceptions import RedisClusterException

REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)
