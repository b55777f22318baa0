"""Live delivery (`bot.outbox`): one shared subscriber per process, on a real Redis server."""

from __future__ import annotations

import queue
import time

import redis

from bot.keys import Keys
from bot.messages import Reply
from bot.outbox import Outbox


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_watchers_get_only_their_replies_and_outlive_a_dropped_connection(redis_server):
    client = redis.Redis(unix_socket_path=redis_server.socket_file)
    keys = Keys("outbox-test")
    outbox = Outbox(client, keys)
    got_a, got_b, got_a2 = queue.SimpleQueue(), queue.SimpleQueue(), queue.SimpleQueue()
    try:
        stop_a = outbox.watch("web:a", got_a.put)
        outbox.watch("web:b", got_b.put)
        stop_a2 = outbox.watch("web:a", got_a2.put)  # a second page of the same conversation
        outbox.publish("web:a", Reply("one", sender="agent", agent="Sam"))
        assert got_a.get(timeout=5) == Reply("one", sender="agent", agent="Sam")
        assert got_a2.get(timeout=5).text == "one" and got_b.empty()

        client.client_kill_filter(_type="pubsub")  # Redis drops the subscriber (a restart, a proxy timeout)

        def delivered_again() -> bool:  # while it reconnects a publish may go unheard: the transcript has it
            outbox.publish("web:b", Reply("two"))
            try:
                return got_b.get(timeout=0.2).text == "two"
            except queue.Empty:
                return False

        _until(delivered_again)
        stop_a()
        outbox.publish("web:a", Reply("three"))
        assert got_a2.get(timeout=5).text == "three" and got_a.empty()  # the other page still watches
        stop_a2()
        channel = keys.outbox("web:a")
        _until(lambda: dict(client.pubsub_numsub(channel))[channel.encode()] == 0)  # nobody left: unsubscribed
    finally:
        outbox.close()
