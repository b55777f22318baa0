"""Live delivery of replies the customer did not ask for in this request (staff messages, hand-back).

A channel that holds a live connection to the customer (the web chat's WebSocket) may
be connected to any worker process, while the staff action that produces the message
runs in another. The bot publishes every such reply on a Redis pub/sub channel per
conversation, and whichever process holds the connection forwards it. Nothing is lost
if nobody listens: the transcript (see `bot.store`) has it and a reconnecting page reloads it.

A process listens for all its open connections on one pub/sub connection, owned by one
thread (redis-py's PubSub is not for sharing between threads): a page opening or closing
asks that thread to subscribe or unsubscribe its conversation. A thousand open pages cost
one Redis connection and one thread, not a thousand of each.

On a Redis Cluster the client's `pubsub()` is redis-py's cluster pub/sub: one connection to
one node, and a classic PUBLISH on any node reaches every node's subscribers (sharded pub/sub
would need Redis 7). The channel carries the conversation's hash tag (see bot.keys).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import threading
from collections.abc import Callable

import redis

from bot.keys import Keys
from bot.messages import Reply
from common.supervise import Supervised

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis = client
        self.keys = keys
        self._shared: _SharedListener | None = None  # started by the first watcher
        self._shared_lock = threading.Lock()

    def publish(self, conversation: str, reply: Reply) -> None:
        try:
            self.redis.publish(self.keys.outbox(conversation), json.dumps(reply.to_dict(), ensure_ascii=False))
        except redis.RedisError as exc:  # the transcript still has it
            log.warning("outbox publish failed (%s)", type(exc).__name__)

    def watch(self, conversation: str, on_reply: Callable[[Reply], None], timeout: float = 2.0) -> Callable[[], None]:
        """Call `on_reply` (on the listener thread) for each reply published to `conversation`.

        Returns once the subscription is live (or after `timeout` if Redis is away: it is made
        when Redis is back). Call the returned function to stop watching.
        """
        return self._listener().watch(self.keys.outbox(conversation), on_reply, timeout)

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()

    def _listener(self) -> _SharedListener:
        with self._shared_lock:
            if self._shared is None:
                self._shared = _SharedListener(self.redis)
            return self._shared


class _SharedListener:
    """One pub/sub connection, owned by one thread, for every watched conversation of this process."""

    def __init__(self, client: redis.Redis, poll_seconds: float = 0.1):
        self.redis = client
        self.poll_seconds = poll_seconds
        self._callbacks: dict[str, dict[int, Callable[[Reply], None]]] = {}
        self._confirmations: dict[str, list[threading.Event]] = {}
        self._requests: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Supervised (common.supervise): a dropped connection, a cluster error or a message it cannot read
        # restarts the loop (re-subscribing everything still watched), briefly: pages wait on it.
        self._worker = Supervised("outbox-listener", self._listen, stop=self._stop, max_backoff=5.0).start()

    def watch(self, channel: str, on_reply: Callable[[Reply], None], timeout: float) -> Callable[[], None]:
        watcher, live = next(self._ids), threading.Event()
        with self._lock:
            first = channel not in self._callbacks
            self._callbacks.setdefault(channel, {})[watcher] = on_reply
            if first:
                self._confirmations.setdefault(channel, []).append(live)
                self._requests.put(("subscribe", channel))
            else:
                live.set()
        live.wait(timeout)

        def stop() -> None:
            with self._lock:
                watchers = self._callbacks.get(channel, {})
                if watchers.pop(watcher, None) is not None and not watchers:
                    del self._callbacks[channel]
                    self._requests.put(("unsubscribe", channel))

        return stop

    def close(self) -> None:
        self._worker.stop(timeout=5)

    def _listen(self, worker: Supervised) -> None:
        """One pub/sub connection's life: everything still watched subscribed, then messages until stopped."""
        pubsub = self.redis.pubsub()
        try:
            with self._lock:
                channels = list(self._callbacks)
            if channels:  # after a reconnect: everything still watched
                pubsub.subscribe(*channels)
            while not worker.stopping:
                self._apply_requests(pubsub)
                message = pubsub.get_message(timeout=self.poll_seconds)
                if message:
                    self._dispatch(message)
                worker.beat()
        finally:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too; the next one is new
                pubsub.close()

    def _apply_requests(self, pubsub) -> None:
        while True:
            try:
                action, channel = self._requests.get_nowait()
            except queue.Empty:
                return
            if action == "subscribe":
                pubsub.subscribe(channel)
            elif pubsub.subscribed:
                pubsub.unsubscribe(channel)

    def _dispatch(self, message: dict) -> None:
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
        if message["type"] == "subscribe":
            with self._lock:
                for live in self._confirmations.pop(channel, []):
                    live.set()
            return
        if message["type"] != "message":
            return
        with self._lock:
            callbacks = list(self._callbacks.get(channel, {}).values())
        if not callbacks:
            return
        reply = Reply.from_dict(json.loads(message["data"]))
        for on_reply in callbacks:
            try:
                on_reply(reply)
            except Exception:  # one broken watcher must not silence the others
                log.exception("outbox watcher failed")
