"""Delivery: how the bot's answers and staff messages reach the customer's platform, once each.

Push platforms (Slack, Telegram) register an `OutputChannel` per channel name; replies go out
through it under a delivery claim per message uid (`DeliveryClaims`), so a platform's
redelivery, a waiting worker and the sweeper never send the same answer twice. Every reply
is also published on the live outbox when asked (a web page connected to any worker shows it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis

from bot.dispatch_records import Handled
from bot.errors import REDIS_ERRORS
from bot.keys import Keys
from bot.messages import InboundMessage, Reply
from bot.outbox import Outbox
from bot.protocols import OutputChannel
from bot.store import ConversationStore

log = logging.getLogger("bot.core")

OutputLookup = Callable[[str], OutputChannel | None]  # channel name -> its push output (None: replies go back)


class DeliveryClaims:
    """Who sends a handled message's replies to its platform: exactly one caller, once they are sent.

    A platform redelivers a message when it is not sure we answered; this tells a redelivery
    whose answer never went out (a crash between answering and sending) from one that was.
    """

    def __init__(self, client: redis.Redis, keys: Keys, *, retention_s: int = 86_400):
        self.redis = client
        self.keys = keys
        self.retention_s = retention_s  # as long as the platform's message id is remembered (bot.dispatch)

    def claim(self, handled: Handled, hold_seconds: int = 60) -> bool:
        """Whether this caller should send `handled.replies` to the platform now.

        True for a first delivery; for a redelivery only when no earlier attempt sent the
        replies (its process died between answering and sending, or sending failed) and
        nobody else is sending them right now. Pair with `finish`.
        """
        if not handled.uid:
            return not handled.duplicate
        # One round trip (the two keys share the uid's slot). The claim is taken even when the replies were
        # sent already: harmless, as nobody sends them again, and it expires with `hold_seconds`.
        pipe = self.redis.pipeline(transaction=True)
        pipe.exists(self.keys.delivery(handled.uid, "sent"))
        pipe.set(self.keys.delivery(handled.uid, "claim"), "1", nx=True, ex=hold_seconds)
        sent, claimed = pipe.execute()
        return not sent and bool(claimed)

    def finish(self, handled: Handled, sent: bool) -> None:
        """Record that the replies reached the platform (or, `sent=False`, were given up: free for a redelivery)."""
        if not handled.uid:
            return
        pipe = self.redis.pipeline(transaction=False)  # one round trip; two slots on a cluster
        if sent:
            # The claim stays until it expires: a redelivery between someone's "sent?" check and their
            # claim attempt then still finds it taken.
            pipe.set(self.keys.delivery(handled.uid, "sent"), "1", ex=self.retention_s)
        else:
            pipe.delete(self.keys.delivery(handled.uid, "claim"))
        if handled.conversation:
            # Settled either way: sent, or given up after the channel's retries (marked for staff). The
            # sweeper's note is only for answers nobody tried to send; a platform redelivery may still try.
            pipe.hdel(self.keys.conv(handled.conversation, "undelivered"), handled.uid)
        pipe.execute()


class Delivery:
    """Sends replies through the channels' outputs (see the module docstring)."""

    def __init__(self, claims: DeliveryClaims, store: ConversationStore, outbox: Outbox, output: OutputLookup):
        self.claims = claims
        self.store = store
        self.outbox = outbox
        self.output = output

    def tracks(self, message: InboundMessage) -> bool:
        """Whether someone must push this message's answers (its channel has an output): the dispatcher
        then notes them undelivered until sent, for the sweeper."""
        return self.output(message.channel) is not None

    def deliver(self, message: InboundMessage, handled: Handled, publish: bool = False) -> bool | None:
        """Send `handled.replies` through the channel's output unless they were sent already; whether they arrived.

        Exactly once per message uid, under the delivery claim: a platform's redelivery, a waiter
        and the sweeper may all hold the same result. With `publish`, each reply also goes out on
        the live outbox. A refusal (after the output's own retries) stops the rest and is marked
        in the transcript (`delivered: false`) so staff see it; the claim is freed for a redelivery.
        """
        if not self.claim(handled):
            return None  # sent already, or being sent by whoever else holds the claim
        output = self.output(message.channel)
        sent = False
        try:
            for index, reply in enumerate(handled.replies):
                if publish:
                    self.outbox.publish(message.conversation_key, reply)
                if output is not None:  # the first reply answers the message (a group may quote it)
                    output.send(message.conversation_id, reply, message.message_id if index == 0 else None)
            sent = True
        except Exception as exc:  # the message text is personal data: only the reason is logged
            log.warning("delivering an answer to %s failed (%s)", message.channel, type(exc).__name__)
            try:
                self.store.append(message.conversation_key, "system",
                                  f"not delivered: {message.channel} refused the bot's answer after retries",
                                  delivered=False)
            except REDIS_ERRORS:
                log.warning("an undelivered answer could not be recorded: Redis unavailable")
        finally:
            self.finish(handled, sent)
        return sent

    def claim(self, handled: Handled) -> bool:
        """For push channels: send `handled.replies` only when this returns True; call `finish` afterwards."""
        try:
            return self.claims.claim(handled)
        except REDIS_ERRORS:
            return not handled.duplicate

    def finish(self, handled: Handled, sent: bool) -> None:
        try:
            self.claims.finish(handled, sent)
        except REDIS_ERRORS:
            log.warning("delivery of a handled message not recorded: Redis unavailable")

    def deliver_swept(self, uid: str, message: InboundMessage, replies: list[Reply]) -> bool:
        """The dispatcher's `on_swept`: deliver the replies of a message handled for nobody known to be waiting.

        That is a message a dead worker left behind, handled by this process's sweeper (or by
        a waiter that found it in `processing`). Its receiver is gone, so nobody would send its
        answer: here it goes out like a staff message, published on the outbox and sent through
        the channel's output, under the same delivery claim as a live receiver's, so a live waiter
        that also got the result does not send it again. False when the channel refused it
        (marked in the transcript for staff) or it was not ours to send.
        """
        if not replies:
            return True  # staff hold the conversation: nothing of the bot's to send
        handled = Handled(replies, uid=uid, conversation=message.conversation_key)
        return bool(self.deliver(message, handled, publish=True))

    def send(self, conversation: str, channel: str, reply: Reply, record: bool = True) -> bool:
        """Publish `reply` and hand it to the channel's output; whether the platform accepted it.

        For messages that answer no customer message (staff's, the hand-back). The channel's
        output retries (Slack: its SDK's retry handlers) and raises once it gives up. With
        `record`, the reply goes into the transcript after the attempt, marked `delivered: false`
        when it failed, so staff see it (console, `/admin/escalations/{id}`).
        """
        self.outbox.publish(conversation, reply)
        delivered = True
        output = self.output(channel)
        if output is not None:
            try:
                output.send(conversation.partition(":")[2], reply)
            except Exception as exc:  # the message text is personal data: only the reason is logged
                delivered = False
                log.warning("delivering a message to %s failed (%s)", channel, type(exc).__name__)
        if record:
            self.store.append_reply(conversation, reply, delivered=None if delivered else False)
        return delivered
