"""A worker process for the dispatch tests: handles its share of messages through Redis."""

from __future__ import annotations

import json
import time

from adapters.runtime.redis_client import redis_client
from bot.dispatch import Dispatcher
from bot.keys import Keys
from bot.messages import InboundMessage, Reply


def run(url: str, prefix: str, messages: list[dict], out_path: str, options: dict | None = None) -> None:
    client = redis_client(url, **(options or {}))  # `options`: cluster / Sentinel, as a server process gets them
    keys = Keys(prefix)

    def handler(message: InboundMessage) -> list[Reply]:
        # What the real bot does under the lease: append to the conversation's history.
        client.rpush(keys.conv(message.conversation_key, "history"), message.text)
        client.incr(f"{prefix}:handled:{message.message_id}")
        time.sleep(0.002)  # a little work, so handlers of one conversation would overlap if unguarded
        return [Reply(f"echo {message.text}")]

    dispatcher = Dispatcher(client, keys, handler)
    records = []
    for data in messages:
        message = InboundMessage(**data)
        submitted = time.time()
        handled = dispatcher.handle(message)
        records.append({"id": message.message_id, "conversation": message.conversation_key,
                        "replies": [r.text for r in handled.replies], "duplicate": handled.duplicate,
                        "submitted": submitted, "returned": time.time()})
    with open(out_path, "w") as f:
        json.dump(records, f)
