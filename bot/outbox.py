"""Live delivery of replies the customer did not ask for in this request (staff messages, hand-back).

A channel that holds a live connection to the customer (the web chat's WebSocket) may
be connected to any worker process, while the staff action that produces the message
runs in another. The bot publishes every such reply on a Redis pub/sub channel per
conversation, and whichever process holds the connection forwards it. Nothing is lost
if nobody listens: the transcript (see `bot.store`) has it and a reconnecting page reloads it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable

import redis

from bot.keys import Keys
from bot.messages import Reply

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis = client
        self.keys = keys

    def publish(self, conversation: str, reply: Reply) -> None:
        try:
            self.redis.publish(self.keys.outbox(conversation), json.dumps(reply.to_dict(), ensure_ascii=False))
        except redis.RedisError as exc:  # the transcript still has it
            log.warning("outbox publish failed (%s)", type(exc).__name__)

    def listen(self, conversation: str, on_reply: Callable[[Reply], None], stop: threading.Event,
               poll_seconds: float = 0.5) -> None:
        """Call `on_reply` for each reply published to `conversation` until `stop` is set (blocking).

        Reconnects when Redis goes away, so a Redis restart does not end a customer's live session.
        """
        while not stop.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.keys.outbox(conversation))
                while not stop.is_set():
                    message = pubsub.get_message(timeout=poll_seconds)
                    if message and message.get("type") == "message":
                        on_reply(Reply.from_dict(json.loads(message["data"])))
            except redis.RedisError:
                stop.wait(1.0)
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()
