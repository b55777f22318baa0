"""Handling each conversation's messages one at a time, in arrival order, exactly once, across processes.

Every incoming message is appended to its conversation's inbox in Redis. Whichever
process holds the conversation's lease drains the inbox in order, storing each message's
replies under the message's uid; the process that received a message waits for that
uid's result and returns it to its caller. So two messages of one conversation arriving
at two workers at once are still handled one after the other, in the order they arrived.

A message moves from the inbox to a one-item `processing` list while it is handled; if
its worker dies, the lease runs out and the next lease holder handles it again before
anything newer (the handler gets the same `uid` again, so it can undo a half-done first
attempt; see `ConversationStore.rewind`). A platform message id seen before (a Slack retry, a Telegram redelivery)
is not handled again: the caller gets the first delivery's replies, marked duplicate. A message's
result is kept as long as its platform id is remembered (`retention_s`, default 24 h): the result is
stored after the id, with the same lifetime, so a redelivery that finds the id always finds the replies;
after that the id is new again.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from bot.keys import Keys
from bot.messages import InboundMessage, Reply

Handler = Callable[[InboundMessage], list[Reply]]
log = logging.getLogger(__name__)
APOLOGY = "Sorry, something went wrong on our side. Please try again in a moment."

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


# Remember the platform's message id and queue the message in one step: a process dying between the two
# would leave an id marked seen whose message was never queued, and every redelivery waiting for it forever.
# KEYS: [seen,] inbox -- seen only for a message with a platform id; both carry the conversation's hash tag.
_ENQUEUE = """
if #KEYS == 2 then
  local first = redis.call('get', KEYS[1])
  if first then return first end
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
redis.call('rpush', KEYS[#KEYS], ARGV[3])
return false
"""


# The wake-up list only wakes callers waiting right now (at most `wait_timeout`); the result stays longer.
_DONE_TTL = 600


class HandlingTimeout(TimeoutError):
    """The message is queued but was not handled in time (it will still be handled once)."""


@dataclass
class Handled:
    replies: list[Reply]
    duplicate: bool = False
    uid: str = ""


class Dispatcher:
    def __init__(self, client: redis.Redis, keys: Keys, handler: Handler, *, lease_ms: int = 30_000,
                 retention_s: int = 86_400, wait_timeout: float = 30.0):
        self.redis = client
        self.keys = keys
        self.handler = handler
        self.lease_ms = lease_ms
        # How long a platform message id is remembered and its result kept: one number for both, so a
        # redelivery never finds the id without the replies (and waits for a result that is gone).
        self.retention_s = retention_s
        self.wait_timeout = wait_timeout
        self._release = client.register_script(_RELEASE)
        self._enqueue = client.register_script(_ENQUEUE)
        # Leases this process could not give back because Redis was down; returned once it answers again,
        # so a Redis restart (which keeps the lock keys when it persists) does not stall those conversations.
        self._unreleased: set[tuple[str, str]] = set()

    def handle(self, message: InboundMessage) -> Handled:
        self._release_leftovers()
        uid = uuid.uuid4().hex
        conversation = message.conversation_key
        seen = [self.keys.seen(conversation, message.message_id)] if message.message_id else []
        first = self._enqueue(keys=[*seen, self.keys.conv(conversation, "inbox")],
                              args=[uid, self.retention_s, json.dumps({"uid": uid, "message": message.to_dict()})])
        if first is not None:  # delivered before: answer with (or wait for) the first delivery's replies
            first_uid = first.decode() if isinstance(first, bytes) else str(first)
            return Handled(self._wait(first_uid, message), duplicate=True, uid=first_uid)
        return Handled(self._wait(uid, message), uid=uid)

    def _wait(self, uid: str, message: InboundMessage) -> list[Reply]:
        deadline = time.monotonic() + self.wait_timeout
        conversation = message.conversation_key
        while True:
            self._drain(conversation)
            stored = self.redis.get(self.keys.result(conversation, uid))
            if stored is not None:
                return [Reply.from_dict(r) for r in json.loads(stored)]
            if time.monotonic() > deadline:
                raise HandlingTimeout(f"message {uid} in {conversation} not handled within {self.wait_timeout} s")
            # Wake as soon as the lease holder finishes our message; re-check the lease otherwise.
            self.redis.blpop([self.keys.done(conversation, uid)], timeout=0.25)

    def _drain(self, conversation: str) -> None:
        lock = self.keys.conv(conversation, "lock")
        token = uuid.uuid4().hex
        if not self.redis.set(lock, token, nx=True, px=self.lease_ms):
            return
        try:
            inbox = self.keys.conv(conversation, "inbox")
            processing = self.keys.conv(conversation, "processing")
            while True:
                # A message left in `processing` by a dead worker comes first.
                raw = self.redis.lindex(processing, 0) or self.redis.lmove(inbox, processing, "LEFT", "RIGHT")
                if raw is None:
                    return
                item = json.loads(raw)
                if self.redis.get(self.keys.result(conversation, item["uid"])) is None:
                    try:
                        replies = self.handler(InboundMessage.from_dict({**item["message"], "uid": item["uid"]}))
                    except redis.RedisError:
                        raise  # the message stays in `processing` and is handled again
                    except Exception:  # a bug must not wedge the conversation behind one message
                        log.exception("handler failed for a message in %s", conversation)
                        replies = [Reply(APOLOGY, sender="system")]
                    pipe = self.redis.pipeline(transaction=True)  # one slot: the conversation's hash tag
                    pipe.set(self.keys.result(conversation, item["uid"]), json.dumps([r.to_dict() for r in replies]),
                             ex=self.retention_s)
                    pipe.rpush(self.keys.done(conversation, item["uid"]), 1)
                    pipe.expire(self.keys.done(conversation, item["uid"]), min(self.retention_s, _DONE_TTL))
                    pipe.lpop(processing)
                    pipe.pexpire(lock, self.lease_ms)
                    pipe.execute()
                else:
                    self.redis.lpop(processing)
        finally:
            try:
                self._release(keys=[lock], args=[token])
            except redis.RedisError:
                self._unreleased.add((lock, token))
                raise

    def claim_delivery(self, handled: Handled, hold_seconds: int = 60) -> bool:
        """Whether this caller should send `handled.replies` to the platform now.

        True for a first delivery; for a redelivery only when no earlier attempt sent the
        replies (its process died between answering and sending, or sending failed) and
        nobody else is sending them right now. Pair with `finish_delivery`.
        """
        if not handled.uid:
            return not handled.duplicate
        if self.redis.exists(self.keys.delivery(handled.uid, "sent")):
            return False
        return bool(self.redis.set(self.keys.delivery(handled.uid, "claim"), "1", nx=True, ex=hold_seconds))

    def finish_delivery(self, handled: Handled, sent: bool) -> None:
        """Record that the replies reached the platform (or, `sent=False`, free them for a redelivery)."""
        if not handled.uid:
            return
        if sent:
            # The claim stays until it expires: a redelivery between someone's "sent?" check and their
            # claim attempt then still finds it taken.
            self.redis.set(self.keys.delivery(handled.uid, "sent"), "1", ex=self.retention_s)
        else:
            self.redis.delete(self.keys.delivery(handled.uid, "claim"))

    def _release_leftovers(self) -> None:
        for lock, token in list(self._unreleased):
            self._release(keys=[lock], args=[token])
            self._unreleased.discard((lock, token))
