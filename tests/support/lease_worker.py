"""A worker process for the lease tests: takes one message and dies in the middle of handling it (the test
SIGKILLs it while its handler sleeps)."""

from __future__ import annotations

import time

from adapters.runtime.redis_client import redis_client
from bot.dispatch import Dispatcher
from bot.keys import Keys
from bot.messages import InboundMessage, Reply
from bot.store import ConversationStore


def run(url: str, prefix: str, message: dict, lease_ms: int, options: dict | None = None) -> None:
    client = redis_client(url, **(options or {}))
    keys = Keys(prefix)
    store = ConversationStore(client, keys)

    def handler(inbound: InboundMessage) -> list[Reply]:
        # What the real bot does first under the lease: record the customer's message (with its uid).
        store.begin(inbound)
        client.incr(f"{prefix}:started:{inbound.message_id}")
        time.sleep(60)  # killed in here
        return [Reply("never")]

    Dispatcher(client, keys, handler, lease_ms=lease_ms).handle(InboundMessage(**message))
