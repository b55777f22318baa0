"""Leases that cannot be lost silently, and orphaned work taken over without a new message (issue 14).

Real Redis (one server, a three-master cluster and Sentinel through `redis_backend`), workers with clients
of their own; the killed worker is a real process, SIGKILLed while its handler runs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time

import pytest

from bot.dispatch import Dispatcher
from bot.keys import Keys
from bot.lease import LeaseLost
from bot.messages import InboundMessage, Reply
from bot.store import ConversationStore
from tests.support import lease_worker

pytestmark = pytest.mark.timeout(120)


def wait_until(check, what: str, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.mark.slow
def test_a_handler_outliving_its_lease_keeps_it_and_a_second_message_waits_its_turn(redis_backend, redis_prefix):
    keys = Keys(redis_prefix)
    log_key = f"{{{redis_prefix}:log}}"

    def worker(name: str) -> Dispatcher:
        client = redis_backend.client()  # each worker its own connection, as separate processes would have

        def handler(message: InboundMessage) -> list[Reply]:
            client.rpush(log_key, f"{name} start {message.text}")
            client.incr(f"{{{redis_prefix}:handled}}:{message.text}")
            time.sleep(3.0 if message.text == "slow" else 0.05)  # 3 s: three times the lease
            client.rpush(log_key, f"{name} end {message.text}")
            return [Reply(f"answer to {message.text}")]

        return Dispatcher(client, keys, handler, lease_ms=1000)

    first, second = worker("A"), worker("B")
    results: dict[str, list[str]] = {}

    def ask(dispatcher: Dispatcher, text: str) -> None:
        handled = dispatcher.handle(InboundMessage("rest", "c1", "u1", text, message_id=text))
        results[text] = [r.text for r in handled.replies]

    client = redis_backend.client()
    slow = threading.Thread(target=ask, args=(first, "slow"))
    slow.start()
    wait_until(lambda: client.lrange(log_key, 0, -1), "the slow handler to start")
    time.sleep(1.5)  # past the first lease: without renewal the second worker would take the conversation now
    quick = threading.Thread(target=ask, args=(second, "quick"))
    quick.start()
    slow.join(30)
    quick.join(30)

    assert results == {"slow": ["answer to slow"], "quick": ["answer to quick"]}  # the slow one committed
    log = [e.decode().split(" ", 1)[1] for e in client.lrange(log_key, 0, -1)]
    assert log == ["start slow", "end slow", "start quick", "end quick"]  # in order, never overlapping
    for text in ("slow", "quick"):
        assert int(client.get(f"{{{redis_prefix}:handled}}:{text}")) == 1  # each exactly once


@pytest.mark.parametrize("writes_after_losing", [True, False], ids=["writes", "returns"])
def test_a_worker_whose_lease_was_taken_cannot_commit_and_its_work_is_discarded(redis_backend, redis_prefix,
                                                                                writes_after_losing):
    keys = Keys(redis_prefix)
    conversation = "rest:c2"
    go_on = threading.Event()
    started = threading.Event()
    calls: list[str] = []
    write_errors: list[Exception] = []
    swept: list[tuple[str, str, list[str]]] = []

    def worker(name: str, **options) -> Dispatcher:
        client = redis_backend.client()
        store = ConversationStore(client, keys)

        def handler(message: InboundMessage) -> list[Reply]:
            calls.append(name)
            store.begin(message)
            if name == "A":
                started.set()
                go_on.wait(30)  # meanwhile the lease is taken away and the message handled by B
                if writes_after_losing:
                    try:
                        store.append(conversation, "bot", "A's answer")
                    except LeaseLost as exc:
                        write_errors.append(exc)
                        raise
            else:
                store.append(conversation, "bot", "B's answer")
            return [Reply(f"{name}'s answer")]

        return Dispatcher(client, keys, handler, lease_ms=1000, **options)

    a = worker("A")
    b = worker("B", sweep_min_age=0.0, on_swept=lambda uid, m, replies: swept.append((uid, m.text,
                                                                                     [r.text for r in replies])))
    result: list = []
    thread = threading.Thread(target=lambda: result.append(a.handle(InboundMessage("rest", "c2", "u", "hi",
                                                                                 message_id="x1"))))
    thread.start()
    assert started.wait(15)
    client = redis_backend.client()
    client.delete(keys.conv(conversation, "lock"))  # A's lease is gone (as if it had stalled past it)
    assert b.sweep_once() == 1  # B takes the conversation over and handles the message left in `processing`
    go_on.set()
    thread.join(30)

    replies = [r.text for r in result[0].replies]
    assert replies == ["B's answer"]  # A's caller gets the committed result: B's
    assert calls == ["A", "B"]
    assert bool(write_errors) == writes_after_losing  # A's late write was refused, not applied
    events = [(e["role"], e["text"]) for e in ConversationStore(client, keys).history(conversation)]
    assert events == [("customer", "hi"), ("bot", "B's answer")]  # A's attempt rewound by B, nothing after
    uid = json.loads(client.get(keys.result(conversation, result[0].uid)))
    assert [r["text"] for r in uid] == ["B's answer"]
    assert client.llen(keys.conv(conversation, "processing")) == 0
    assert swept == [(result[0].uid, "hi", ["B's answer"])]  # the hook where a push channel would deliver it


@pytest.mark.slow
def test_a_worker_killed_mid_message_is_taken_over_by_another_workers_sweeper(redis_backend, redis_prefix):
    keys = Keys(redis_prefix)
    conversation = "rest:c3"
    message = {"channel": "rest", "conversation_id": "c3", "user_id": "u3", "text": "where is my order",
               "message_id": "k1"}
    client = redis_backend.client()
    context = multiprocessing.get_context("spawn")
    doomed = context.Process(target=lease_worker.run,
                             args=(redis_backend.url, redis_prefix, message, 1000, redis_backend.options))
    doomed.start()
    try:
        # SIGKILL the worker while Redis shows it handling the message: in the middle, by construction.
        wait_until(lambda: client.get(f"{redis_prefix}:started:k1"), "the worker to start handling", 60)
        assert client.llen(keys.conv(conversation, "processing")) == 1
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.join(10)
        killed_at = time.monotonic()
    finally:
        if doomed.is_alive():
            doomed.kill()
    uid = json.loads(client.lindex(keys.conv(conversation, "processing"), 0))["uid"]

    store = ConversationStore(redis_backend.client(), keys)
    handled: list[str] = []
    swept: list[tuple[str, str]] = []

    def handler(inbound: InboundMessage) -> list[Reply]:
        handled.append(inbound.text)
        store.begin(inbound)
        store.append(inbound.conversation_key, "bot", "It is on its way.")
        return [Reply("It is on its way.")]

    survivor = Dispatcher(redis_backend.client(), keys, handler, lease_ms=1000, sweep_min_age=0.5,
                          on_swept=lambda u, m, replies: swept.append((u, replies[0].text)))
    survivor.start_sweeper(interval=0.3)
    try:
        stored = wait_until(lambda: client.get(keys.result(conversation, uid)), "the sweeper to handle it", 10)
        took = time.monotonic() - killed_at
    finally:
        survivor.close()
    assert took < 5  # the dead lease (1 s) runs out, the next sweep takes over: no new message needed
    assert [r["text"] for r in json.loads(stored)] == ["It is on its way."]
    assert handled == ["where is my order"] and swept == [(uid, "It is on its way.")]
    events = [(e["role"], e["text"]) for e in store.history(conversation)]
    assert events == [("customer", "where is my order"), ("bot", "It is on its way.")]  # dead attempt rewound
    assert client.llen(keys.conv(conversation, "processing")) == 0
    assert client.zscore(keys.pending(), conversation) is None  # nothing pending: unmarked


def test_finished_conversations_are_unmarked_and_live_leases_are_left_alone(redis_url, redis_prefix):
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    dispatcher = Dispatcher(client, keys, lambda m: [Reply("ok")], lease_ms=1000, sweep_min_age=0.0)
    dispatcher.handle(InboundMessage("rest", "c4", "u", "hello"))
    # Work pending under someone's live lease: the sweeper keeps out and keeps the marker.
    client.rpush(keys.conv("rest:c5", "inbox"), json.dumps({"uid": "u5", "message": InboundMessage(
        "rest", "c5", "u", "queued").to_dict()}))
    client.set(keys.conv("rest:c5", "lock"), "someone", px=10_000)
    client.zadd(keys.pending(), {"rest:c5": time.time()})
    assert dispatcher.sweep_once() == 0
    assert client.zscore(keys.pending(), "rest:c4") is None
    assert client.zscore(keys.pending(), "rest:c5") is not None
    assert client.llen(keys.conv("rest:c5", "inbox")) == 1


@pytest.mark.slow
def test_a_renewer_that_meets_a_cluster_error_is_restarted_and_the_lease_never_runs_out(redis_url, redis_prefix):
    """Before supervision the renewer caught only RedisError: a cluster error ended it, and every lease it held
    ran out under a handler still working. Now it starts again (backoff capped at one renewal interval)."""
    from redis.exceptions import RedisClusterException

    from common import supervise
    from tests.support.faults import FaultyRedis

    client = FaultyRedis.from_url(redis_url)
    keys = Keys(redis_prefix)
    lock = keys.conv("rest:c6", "lock")
    ttls: list[int] = []
    restarts: list[int] = []

    def handler(message: InboundMessage) -> list[Reply]:
        client.arm("lease-renewer", RedisClusterException("injected: slots moving"), count=2)
        deadline = time.monotonic() + 4.5  # one and a half leases
        while time.monotonic() < deadline:
            ttls.append(client.pttl(lock))
            restarts.extend(h.restarts for h in supervise.threads() if h.name == "lease-renewer")
            time.sleep(0.05)
        return [Reply("done")]

    dispatcher = Dispatcher(client, keys, handler, lease_ms=3000)
    handled = dispatcher.handle(InboundMessage("rest", "c6", "u", "slow one"))
    assert [r.text for r in handled.replies] == ["done"]
    assert client.left("lease-renewer") == 0 and max(restarts) >= 2  # both faults hit, both restarted
    assert min(ttls) > 0  # the lock never expired: -2 would mean it was gone
