"""Nothing twice: a message whose worker is SIGKILLed part-way changes the world once (issue 14).

A real worker process handles one message on a real Redis and is killed at a chosen point:
in the middle of a fallback (its metadata and sentiment trail already written), in the middle
of an escalation (the escalation record already created), or after the commit, while the staff
notification is being sent. Another process's sweeper then takes the conversation over with no
new message. Whatever the kill point: one escalation, one staff notification, each counter and
the sentiment trail counted once, one bot answer in the transcript.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from bot.core import Bot, BotHooks
from bot.messages import InboundMessage
from tests.effects_model import MildlyUnhappyModel

ROOT = Path(__file__).resolve().parent.parent


def kill_worker_at(redis_server, prefix: str, message: InboundMessage, pause_at: str) -> None:
    url = f"unix://{redis_server.socket_file}"
    worker = subprocess.Popen([sys.executable, "-m", "tests.effects_worker",
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
    bot = Bot(client, MildlyUnhappyModel(), None, prefix=prefix, lease_ms=1000,
              hooks=BotHooks(on_escalation=[lambda record, transcript: notified.append(record["id"])]))
    bot.dispatcher.sweep_min_age = 0.0
    return bot


def sweep_until_done(bot: Bot, conversation: str, seconds: float = 15.0) -> None:
    """The dead worker's lease runs out after 1 s; the sweeper then takes over, no new message needed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        bot.dispatcher.sweep_once()
        if not bot.redis.zscore(bot.keys.pending(), conversation):
            return
        time.sleep(0.2)
    raise AssertionError("the sweeper did not finish the dead worker's message")


def counts(bot: Bot) -> dict[str, int]:
    raw = bot.redis.hgetall(bot.keys.stats(bot.stats.day(), "counts"))
    return {k.decode(): int(v) for k, v in raw.items()}


@pytest.mark.parametrize("pause_at", ["escalation", "notify"])
def test_a_request_for_a_person_killed_mid_way_opens_one_escalation_and_notifies_once(redis_server, pause_at):
    prefix = f"once-{uuid.uuid4().hex[:6]}"
    message = InboundMessage("rest", "carol", "carol", "/human", message_id="m1")
    kill_worker_at(redis_server, prefix, message, pause_at)
    notified: list[str] = []
    bot = survivor(redis_server, prefix, notified)
    try:
        before = bot.queue.list()
        assert len(before) == 1  # the dead worker had created it (mid-escalation) or committed it (notify)
        sweep_until_done(bot, message.conversation_key)
        records = bot.queue.list()
        assert [r["id"] for r in records] == [before[0]["id"]]  # handled again: the same escalation, no second
        assert notified == [records[0]["id"]]  # staff told once
        assert counts(bot).get("escalations") == 1 and counts(bot).get("messages") == 1
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
    bot = survivor(redis_server, prefix, [])
    try:
        conversation = message.conversation_key
        assert bot.store.meta(conversation)["fallbacks"] == "1"  # what the dead attempt had already written
        sweep_until_done(bot, conversation)
        assert bot.store.meta(conversation)["fallbacks"] == "1"  # not 2: the dead attempt was undone first
        assert len(bot.redis.lrange(bot.keys.conv(conversation, "sentiment"), 0, -1)) == 1
        assert [e["role"] for e in bot.store.history(conversation)] == ["customer", "unanswered", "bot"]
        assert counts(bot) == {"messages": 1, "fallbacks": 1}
        # The rate limit counted the message once too: the next one is the second.
        rate = bot.redis.get(bot.keys.rate("rest", "dave", int(time.time() // bot.rate_limiter.window)))
        assert int(rate) == 1
    finally:
        bot.close()


def test_an_intake_retried_by_the_client_after_it_succeeded_queues_the_message_once(redis_server):
    """redis-py's retry re-runs the intake script when a dropped connection hid its success: still one message."""
    prefix = f"once-{uuid.uuid4().hex[:6]}"
    bot = survivor(redis_server, prefix, [])
    dispatcher = bot.dispatcher
    calls = []
    real = dispatcher._enqueue

    def enqueue_twice(keys, args):  # what the retry does: the very same script call, a second time
        calls.append(real(keys=keys, args=args))
        return real(keys=keys, args=args)

    dispatcher._enqueue = enqueue_twice
    try:
        handled = bot.handle(InboundMessage("rest", "erin", "erin", "hello there"))  # no platform id
        assert not handled.duplicate and handled.replies
        assert calls == [None]  # the first run queued it; the retry found its own intake
        roles = [e["role"] for e in bot.store.history("rest:erin")]
        assert roles == ["customer", "unanswered", "bot"]  # handled once (the stub model's intent has no answer)
        assert counts(bot)["messages"] == 1
    finally:
        bot.close()
