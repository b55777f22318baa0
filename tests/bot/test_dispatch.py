"""Ordering, exactly-once handling and de-duplication across real processes on a real Redis.

The first two run on one Redis, on a three-master Redis Cluster and through Sentinel (`redis_backend`).
"""

from __future__ import annotations

import json
import multiprocessing
import random
import threading

import pytest
import redis

from bot.dispatch import Dispatcher
from bot.keys import Keys
from bot.messages import InboundMessage, Reply
from tests.support import dispatch_worker


@pytest.mark.slow
def test_four_workers_200_interleaved_messages_20_conversations(redis_backend, redis_prefix, tmp_path):
    rng = random.Random(5)
    messages = [{"channel": "rest", "conversation_id": f"c{c}", "user_id": f"u{c}", "text": f"c{c} m{k}",
                 "message_id": f"c{c}-m{k}"} for k in range(10) for c in range(20)]
    # Interleave conversations and spread every conversation over all four workers.
    shares: list[list[dict]] = [[] for _ in range(4)]
    for i, message in enumerate(messages):
        shares[(i + rng.randrange(4)) % 4].append(message)
    context = multiprocessing.get_context("spawn")
    outputs = [tmp_path / f"w{i}.json" for i in range(4)]
    workers = [context.Process(target=dispatch_worker.run,
                               args=(redis_backend.url, redis_prefix, share, str(out), redis_backend.options))
               for share, out in zip(shares, outputs, strict=True)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=240)
        assert w.exitcode == 0
    records = [r for out in outputs for r in json.loads(out.read_text())]
    client = redis_backend.client()
    keys = Keys(redis_prefix)

    assert len(records) == 200
    for record in records:  # every message answered, with its own reply, exactly once
        text = record["id"].replace("-", " ")
        assert record["replies"] == [f"echo {text}"] and not record["duplicate"]
        assert int(client.get(f"{redis_prefix}:handled:{record['id']}")) == 1
    for c in range(20):
        history = [h.decode() for h in client.lrange(keys.conv(f"rest:c{c}", "history"), 0, -1)]
        assert sorted(history) == sorted(f"c{c} m{k}" for k in range(10))  # complete, no repeats
        position = {text: i for i, text in enumerate(history)}
        mine = [r for r in records if r["conversation"] == f"rest:c{c}"]
        for a in mine:  # in order: anything answered before b was sent comes before b
            for b in mine:
                if a["returned"] < b["submitted"]:
                    assert position[a["id"].replace("-", " ")] < position[b["id"].replace("-", " ")]


def test_the_same_platform_message_three_times_is_handled_once(redis_backend, redis_prefix):
    client = redis_backend.client()
    calls = []

    def handler(message: InboundMessage) -> list[Reply]:
        calls.append(message.text)
        return [Reply(f"answer to {message.text}")]

    dispatcher = Dispatcher(client, Keys(redis_prefix), handler)
    message = InboundMessage("slack", "D1", "U1", "where is my order", message_id="Ev123")
    results = []
    threads = [threading.Thread(target=lambda: results.append(dispatcher.handle(message))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["where is my order"]
    assert sorted(r.duplicate for r in results) == [False, True, True]
    assert all([x.text for x in r.replies] == ["answer to where is my order"] for r in results)


def test_a_message_left_by_a_dead_worker_is_handled_once_by_the_next(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    orphan = InboundMessage("rest", "c1", "u1", "first", message_id="m1")
    # A worker took the message into `processing` and died before storing a result or releasing.
    client.rpush(keys.conv(orphan.conversation_key, "processing"),
                 json.dumps({"uid": "dead-worker-uid", "message": orphan.to_dict()}))
    client.set(keys.conv(orphan.conversation_key, "lock"), "dead", px=300)
    handled_texts = []

    def handler(message: InboundMessage) -> list[Reply]:
        handled_texts.append(message.text)
        return [Reply("ok")]

    dispatcher = Dispatcher(client, keys, handler)
    dispatcher.handle(InboundMessage("rest", "c1", "u1", "second", message_id="m2"))
    assert handled_texts == ["first", "second"]
    assert json.loads(client.get(keys.result("rest:c1", "dead-worker-uid"))) == [Reply("ok").to_dict()]


def test_a_failing_handler_gets_an_apology_and_the_conversation_moves_on(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)

    def handler(message: InboundMessage) -> list[Reply]:
        if message.text == "boom":
            raise ValueError("bug")
        return [Reply("fine")]

    dispatcher = Dispatcher(client, Keys(redis_prefix), handler)
    first = dispatcher.handle(InboundMessage("rest", "c9", "u", "boom"))
    assert first.replies[0].sender == "system" and "Sorry" in first.replies[0].text
    assert dispatcher.handle(InboundMessage("rest", "c9", "u", "hello")).replies == [Reply("fine")]
