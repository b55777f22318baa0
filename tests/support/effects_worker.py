"""A worker process for tests/system/test_exactly_once.py: handles one message and stops dead at a chosen point.

It runs the real `Bot` on a real Redis with a stub model, and at the named point (a bot event,
or the escalation notification after the commit) marks `PREFIX:paused` in Redis and sleeps, so
the test can SIGKILL it exactly there.
"""

from __future__ import annotations

import json
import sys
import time

from adapters.runtime.redis_client import redis_client
from bot.core import Bot, BotHooks
from bot.events import QuietObserver
from bot.messages import InboundMessage
from tests.support.effects_model import MildlyUnhappyModel


def run(url: str, prefix: str, message: dict, pause_at: str) -> None:
    client = redis_client(url)

    def pause() -> None:
        client.set(f"{prefix}:paused", 1)
        time.sleep(120)

    class PausingObserver(QuietObserver):
        def escalation(self, reason: str, channel: str) -> None:
            if pause_at == "escalation":
                pause()

        def fallback(self, channel: str, text_length: int) -> None:
            if pause_at == "fallback":
                pause()

    hooks = BotHooks(observer=PausingObserver(),
                     on_escalation=[lambda escalation, transcript: pause() if pause_at == "notify" else None])
    bot = Bot(client, MildlyUnhappyModel(), None, prefix=prefix, hooks=hooks, lease_ms=1000)
    bot.handle(InboundMessage.from_dict(message))


if __name__ == "__main__":
    run(*json.loads(sys.argv[1]))
