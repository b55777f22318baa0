"""Answers to work a dead worker left behind reach the customer once (`Delivery.deliver_swept`, issue 14).

A real Redis, the real `Bot` and `Dispatcher`; the model is a stub (the replies are templates).
The end-to-end version, with real server processes and the Slack stand-in, is tests/system/test_slack_crash.py.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from types import SimpleNamespace

import redis

from bot.core import Bot, BotHooks
from bot.dispatch_records import Handled
from bot.keys import Keys
from bot.messages import InboundMessage, Reply
from tests.support.outputs import outputs


class GreetingModel:
    def predict_one(self, text: str):
        return SimpleNamespace(intent="greet", confidence=0.99, out_of_scope=False, sentiment_scores={"negative": 0.0})


def make_bot(redis_server, sink, output=None) -> tuple[Bot, redis.Redis, Keys]:
    """A bot whose sweeper looks at once; its Redis client and keys, for the test to leave work behind."""
    client = redis.Redis(unix_socket_path=redis_server.socket_file)
    prefix = f"swept-{uuid.uuid4().hex[:6]}"
    hooks = BotHooks(output=output or outputs(sink)) if sink is not None or output else BotHooks()
    bot = Bot(client, GreetingModel(), None, prefix=prefix, hooks=hooks, lease_ms=2000, sweep_min_age=0.0)
    return bot, client, Keys(prefix)


def leave_behind(client: redis.Redis, keys: Keys, message: InboundMessage) -> str:
    """What a worker SIGKILLed mid-message leaves in Redis: the message in `processing`, its lease expired."""
    uid = uuid.uuid4().hex
    conversation = message.conversation_key
    client.zadd(keys.pending(), {conversation: time.time() - 5})
    client.rpush(keys.conv(conversation, "processing"), json.dumps({"uid": uid, "message": message.to_dict()}))
    return uid


def test_a_swept_message_is_delivered_once_through_the_channel_and_the_outbox(redis_server):
    sent: list[tuple[str, str, Reply]] = []
    bot, client, keys = make_bot(redis_server,
                                 lambda conversation, channel, reply: sent.append((conversation, channel, reply)))
    pushed: queue.SimpleQueue[Reply] = queue.SimpleQueue()
    message = InboundMessage("slack", "DSWEPT1", "U1", "hello", message_id="DSWEPT1:1.0", display_name="Casey")
    stop = bot.outbox.watch(message.conversation_key, pushed.put)
    try:
        uid = leave_behind(client, keys, message)
        assert bot.sweep_once() == 1
        assert [(c, ch) for c, ch, _ in sent] == [("slack:DSWEPT1", "slack")]
        assert "Casey" in sent[0][2].text
        assert pushed.get(timeout=5).text == sent[0][2].text  # a web page on any worker would show it live
        # Swept again, or the same result delivered again (a waiter that also picked it up): nothing more.
        assert bot.sweep_once() == 0
        assert bot.delivery.deliver_swept(uid, message, [sent[0][2]]) is False
        assert len(sent) == 1
        roles = [e["role"] for e in bot.store.history(message.conversation_key)]
        assert roles == ["customer", "bot"]
    finally:
        stop()
        bot.close()


def test_a_live_waiter_that_claimed_the_delivery_first_is_not_doubled(redis_server):
    sent: list[Reply] = []
    bot, _, _ = make_bot(redis_server, lambda conversation, channel, reply: sent.append(reply))
    try:
        message = InboundMessage("telegram", "42", "7", "hi", message_id="42:1")
        handled = Handled([Reply("hello")], uid=uuid.uuid4().hex)
        assert bot.delivery.claim(handled)  # the adapter of the process that received it is sending
        assert bot.delivery.deliver_swept(handled.uid, message, handled.replies) is False
        bot.delivery.finish(handled, True)
        assert bot.delivery.deliver_swept(handled.uid, message, handled.replies) is False
        assert sent == []
    finally:
        bot.close()


def test_a_swept_answer_the_channel_refuses_is_marked_for_staff_and_freed_for_a_retry(redis_server):
    attempts: list[Reply] = []

    def refuse(conversation: str, channel: str, reply: Reply) -> None:
        attempts.append(reply)
        raise OSError("platform down")

    bot, client, keys = make_bot(redis_server, refuse)
    try:
        message = InboundMessage("slack", "DSWEPT2", "U2", "hello", message_id="DSWEPT2:1.0")
        uid = leave_behind(client, keys, message)
        assert bot.sweep_once() == 1
        assert len(attempts) == 1
        events = bot.store.history(message.conversation_key)
        assert events[-1]["role"] == "system" and events[-1]["delivered"] is False
        assert "hello" not in events[-1]["text"]
        # Not recorded as sent: a redelivery of the platform message may still send it.
        assert bot.delivery.claim(Handled(attempts, duplicate=True, uid=uid))
    finally:
        bot.close()


def test_pull_channels_get_the_outbox_only(redis_server):
    from adapters.runtime.channel_registry import ChannelRegistry

    registry = ChannelRegistry()  # no output registered for web or rest
    bot, client, keys = make_bot(redis_server, None, output=registry.output)
    pushed: queue.SimpleQueue[Reply] = queue.SimpleQueue()
    message = InboundMessage("web", "s" * 20, "s" * 20, "hello", message_id=f"{'s' * 20}:c1")
    stop = bot.outbox.watch(message.conversation_key, pushed.put)
    try:
        leave_behind(client, keys, message)
        assert bot.sweep_once() == 1
        assert pushed.get(timeout=5).sender == "bot"
    finally:
        stop()
        bot.close()


def test_an_answer_committed_but_never_posted_is_posted_by_the_sweeper_once(redis_server):
    sent: list[Reply] = []
    bot, client, keys = make_bot(redis_server, lambda conversation, channel, reply: sent.append(reply))
    try:
        message = InboundMessage("slack", "DSWEPT3", "U3", "hello", message_id="DSWEPT3:1.0")
        handled = bot.handle(message)  # handled and committed; its worker dies before claim/post
        assert handled.replies and sent == []
        assert bot.sweep_once() == 1
        assert sent == handled.replies
        assert bot.sweep_once() == 0 and sent == handled.replies
        # A delivery the adapter finished itself leaves nothing for the sweeper.
        other = bot.handle(InboundMessage("slack", "DSWEPT3", "U3", "again", message_id="DSWEPT3:2.0"))
        assert bot.delivery.claim(other)
        bot.delivery.finish(other, True)
        assert bot.sweep_once() == 0 and len(sent) == len(handled.replies)
        assert not client.exists(keys.conv(message.conversation_key, "undelivered"))
    finally:
        bot.close()
