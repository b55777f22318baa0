"""Roles that at most one process may play at a time, across every worker on one Redis.

Telegram's long polling is one: Telegram answers a second concurrent `getUpdates` for the
same bot with 409 Conflict, so with `frontdesk serve --workers N` exactly one worker
polls while the others stand by. The role is a Redis key holding the player's token with
a time to live; the player renews it before each round of its work, and gives it back
when it stops. A player that dies frees the role when the time runs out.
"""

from __future__ import annotations

import uuid

import redis

from bot.keys import Keys

# Take the role when it is free, or keep it (renewing its time) when it is already ours.
_HOLD = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


class RoleLease:
    """One process's claim on a named role; `hold()` before each round of the role's work."""

    def __init__(self, client: redis.Redis, keys: Keys, role: str, ttl_s: float):
        self.key = keys.role(role)
        self.ttl_ms = int(ttl_s * 1000)
        self.token = uuid.uuid4().hex
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)

    def hold(self) -> bool:
        """Take or renew the role; False while another process plays it."""
        return bool(self._hold(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        """Give the role back (only if it is still ours), so a standby takes it at once."""
        self._release(keys=[self.key], args=[self.token])
