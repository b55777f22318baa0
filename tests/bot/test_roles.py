"""A role only one worker plays at a time (`bot.roles`), on a real Redis server."""

from __future__ import annotations

import time

import redis

from bot.keys import Keys
from bot.roles import RoleLease


def test_one_holder_at_a_time_renewed_by_it_freed_by_release_or_by_its_death(redis_server):
    client = redis.Redis(unix_socket_path=redis_server.socket_file)
    keys = Keys("roles-test")
    a, b = (RoleLease(client, keys, "poller", ttl_s=0.5) for _ in range(2))
    assert a.hold() and not b.hold()
    time.sleep(0.3)
    assert a.hold()  # renewed: still a's after the first lease time would have ended
    time.sleep(0.3)
    assert not b.hold()
    b.release()  # not b's to give back
    assert not b.hold()
    a.release()
    assert b.hold() and not a.hold()
    time.sleep(0.7)  # b dies without releasing: its lease runs out
    assert a.hold()
