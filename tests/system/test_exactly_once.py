"""Nothing twice: a message whose worker is SIGKILLed part-way changes the world once (issue 14).

A real worker process handles one message on a real Redis and is killed at a chosen point:
in the middle of a fallback (its metadata and sentiment trail already written), in the middle
of an escalation (the escalation record already created), or after the commit, while the staff
notification is being sent. Another process's sweeper then takes the conversation over with no
new message. Whatever the kill point: one escalation, one staff notification, each counter and
the sentiment trail counted once, one bot answer in the transcript.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid

import pytest
import redis

from bot.core import Bot, BotHooks
from bot.dispatch_scripts import ENQUEUE
from bot.keys import Keys
from bot.messages import InboundMessage
from tests.support.effects_model import MildlyUnhappyModel
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT


def kill_worker_at(redis_server, prefix: str, message: InboundMessage, pause_at: str) -> None:
    url = f"unix://{redis_server.socket_file}"
    worker = subprocess.Popen([sys.executable, "-m", "tests.support.effects_worker",
                               json.dumps([url, prefix, message.to_dict(), pause_at])], cwd=ROOT)
    client = redis.Redis(unix_socket_path=redis_server.socket_file)
    try:
        deadline = time.monotonic() + 120
        while not client.get(f"{prefix}:paused"):
            assert worker.poll() is None, "the worker ended before reaching the kill point"
            assert time.monotonic() < deadline, f"the worker never reached {pause_at}"
            time.sleep(0.05)
    finally:
        worker.kill()
        worker.wait()


def survivor(redis_server, prefix: str, notified: list) -> Bot:
    client = redis.Redis(unix_socket_path=redis_server.socket_file)
    return Bot(client, MildlyUnhappyModel(), None, prefix=prefix, lease_ms=1000, sweep_min_age=0.0,
               hooks=BotHooks(on_escalation=[lambda escalation, transcript: notified.append(escalation.id)]))


def store_of(redis_server, prefix: str) -> tuple[redis.Redis, Keys]:
    """The test's own look at the survivor's Redis."""
    return redis.Redis(unix_socket_path=redis_server.socket_file), Keys(prefix)


def sweep_until_done(bot: Bot, store: tuple[redis.Redis, Keys], conversation: str, seconds: float = 15.0) -> None:
    """The dead worker's lease runs out after 1 s; the sweeper then takes over, no new message needed."""
    client, keys = store
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        bot.sweep_once()
        if not client.zscore(keys.pending(), conversation):
            return
        time.sleep(0.2)
    raise AssertionError("the sweeper did not finish the dead worker's message")


def counts(bot: Bot, store: tuple[redis.Redis, Keys]) -> dict[str, int]:
    client, keys = store
    raw = client.hgetall(keys.stats(bot.stats.day(), "counts"))
    return {k.decode(): int(v) for k, v in raw.items()}


@pytest.mark.parametrize("pause_at", ["escalation", "notify"])
def test_a_request_for_a_person_killed_mid_way_opens_one_escalation_and_notifies_once(redis_server, pause_at):
    prefix = f"once-{uuid.uuid4().hex[:6]}"
    message = InboundMessage("rest", "carol", "carol", "/human", message_id="m1")
    kill_worker_at(redis_server, prefix, message, pause_at)
    notified: list[str] = []
    bot, store = survivor(redis_server, prefix, notified), store_of(redis_server, prefix)
    try:
        before = bot.queue.list()
        assert len(before) == 1  # the dead worker had created it (mid-escalation) or committed it (notify)
        sweep_until_done(bot, store, message.conversation_key)
        records = bot.queue.list()
        assert [r.id for r in records] == [before[0].id]  # handled again: the same escalation, no second
        assert notified == [records[0].id]  # staff told once
        assert counts(bot, store).get("escalations") == 1 and counts(bot, store).get("messages") == 1
        events = bot.store.history(message.conversation_key)
        assert [e["role"] for e in events] == ["customer", "system", "bot"]
        assert bot.store.meta(message.conversation_key)["status"] == "escalated"
        # The customer's redelivery gets the one answer; nothing more happens.
        again = bot.handle(message)
        assert again.duplicate and len(bot.queue.list()) == 1 and len(notified) == 1
    finally:
        bot.close()


def test_a_fallback_killed_mid_way_counts_once_toward_escalation(redis_server):
    prefix = f"once-{uuid.uuid4().hex[:6]}"
    message = InboundMessage("rest", "dave", "dave", "my parcel is late", message_id="m1")
    kill_worker_at(redis_server, prefix, message, "fallback")
    bot, store = survivor(redis_server, prefix, []), store_of(redis_server, prefix)
    client, keys = store
    try:
        conversation = message.conversation_key
        assert bot.store.meta(conversation)["fallbacks"] == "1"  # what the dead attempt had already written
        sweep_until_done(bot, store, conversation)
        assert bot.store.meta(conversation)["fallbacks"] == "1"  # not 2: the dead attempt was undone first
        assert len(client.lrange(keys.conv(conversation, "sentiment"), 0, -1)) == 1
        assert [e["role"] for e in bot.store.history(conversation)] == ["customer", "unanswered", "bot"]
        assert {k: v for k, v in counts(bot, store).items() if k in ("messages", "fallbacks")} == {
            "messages": 1, "fallbacks": 1}
        # The rate limit counted the message once too, across every window the run may have straddled.
        windows = list(client.scan_iter(match=keys.rate("rest", "dave", "[0-9]*")))  # numbered windows only
        assert sum(int(client.get(window)) for window in windows) == 1
    finally:
        bot.close()


def test_an_intake_retried_by_the_client_after_it_succeeded_queues_the_message_once(redis_server):
    """redis-py's retry re-sends the intake (the pending mark and the enqueue script, one pipeline) when a dropped
    connection hid its success: still one message."""
    prefix = f"once-{uuid.uuid4().hex[:6]}"
    calls = []
    enqueue_sha = hashlib.sha1(ENQUEUE.encode()).hexdigest()

    class RetriedPipeline(redis.client.Pipeline):
        """Sends the intake twice, as redis-py's retry sends a pipeline again after a dropped connection."""

        def execute(self, raise_on_error=True):
            stack = list(self.command_stack)
            if not any(args[:2] == ("EVALSHA", enqueue_sha) for args, _ in stack):
                return super().execute(raise_on_error)
            calls.append(super().execute(raise_on_error)[-1])  # the first send: its reply lost on the way
            self.command_stack.extend(stack)  # the very same commands, a second time
            return super().execute(raise_on_error)

    class RetryingRedis(redis.Redis):
        def pipeline(self, transaction=True, shard_hint=None):
            return RetriedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)

    bot = Bot(RetryingRedis(unix_socket_path=redis_server.socket_file), MildlyUnhappyModel(), None, prefix=prefix)
    store = store_of(redis_server, prefix)
    try:
        handled = bot.handle(InboundMessage("rest", "erin", "erin", "hello there"))  # no platform id
        assert not handled.duplicate and handled.replies
        assert calls == [None]  # the first run queued it; the retry found its own intake
        roles = [e["role"] for e in bot.store.history("rest:erin")]
        assert roles == ["customer", "unanswered", "bot"]  # handled once (the stub model's intent has no answer)
        assert counts(bot, store)["messages"] == 1
    finally:
        bot.close()
