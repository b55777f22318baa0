"""Retention: a handled message's answer is kept exactly as long as its platform message id (real Redis).

Before, results lived 600 s and seen ids 86 400 s: a redelivery after ten minutes found the id,
waited for a result that was gone, and got a 503 forever. Here retention is a few seconds, and a
redelivery at half of it (far past the old 600/86 400 ratio) still gets the stored answer.
"""

from __future__ import annotations

import time

import pytest
import redis

from adapters.runtime.settings import Settings
from bot.core import Bot
from bot.dispatch import Dispatcher
from bot.keys import Keys
from bot.messages import InboundMessage, Reply

RETENTION = 3


def wait_until_gone(client: redis.Redis, key: str, timeout: float = RETENTION + 5) -> None:
    deadline = time.monotonic() + timeout
    while client.exists(key):
        assert time.monotonic() < deadline, f"{key} outlived its retention"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_redelivery_gets_the_stored_answer_until_the_id_expires_then_it_is_new(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    calls = []

    def handler(message: InboundMessage) -> list[Reply]:
        calls.append(message.text)
        return [Reply(f"answer {len(calls)}")]

    dispatcher = Dispatcher(client, keys, handler, retention_s=RETENTION, wait_timeout=5)
    message = InboundMessage("slack", "D1", "U1", "where is my order", message_id="Ev1")
    first = dispatcher.handle(message)
    assert first.replies == [Reply("answer 1")] and not first.duplicate
    seen_key = keys.seen(message.conversation_key, "Ev1")
    # The answer outlives the id that points at it: whoever finds the id finds the answer.
    # Read in one transaction: two reads a few ms apart on a busy machine compare different moments.
    pipe = client.pipeline(transaction=True)
    pipe.pttl(seen_key)
    pipe.pttl(keys.result(message.conversation_key, first.uid))
    seen_ms, result_ms = pipe.execute()
    assert 0 < seen_ms <= result_ms <= RETENTION * 1000

    time.sleep(RETENTION / 2)
    started = time.monotonic()
    again = dispatcher.handle(message)
    assert time.monotonic() - started < 1  # answered from Redis, not after a wait for a result that is gone
    assert again.duplicate and again.uid == first.uid and again.replies == [Reply("answer 1")]
    assert calls == ["where is my order"]  # not handled again

    wait_until_gone(client, seen_key)
    later = dispatcher.handle(message)
    assert not later.duplicate and later.uid != first.uid and later.replies == [Reply("answer 2")]
    assert calls == ["where is my order"] * 2


def test_the_bot_takes_its_retention_from_frontdesk_dedup_seconds(redis_url, redis_prefix, monkeypatch):
    assert Settings().dedup_seconds == 86_400
    monkeypatch.setenv("FRONTDESK_DEDUP_SECONDS", str(RETENTION))
    settings = Settings()
    assert settings.dedup_seconds == RETENTION
    client = redis.Redis.from_url(redis_url)
    # `/human` needs no model: a request for a person, redelivered, must open one escalation only.
    bot = Bot(client, None, None, prefix=redis_prefix, dedup_seconds=settings.dedup_seconds)
    try:
        message = InboundMessage("telegram", "42", "42", "/human", message_id="upd-7")
        first = bot.handle(message)
        time.sleep(RETENTION / 2)
        again = bot.handle(message)
        assert again.duplicate and again.replies == first.replies
        assert len(bot.queue.list()) == 1
    finally:
        bot.close()
