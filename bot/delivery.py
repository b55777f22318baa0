"""Delivery: how the bot's answers and staff messages reach the customer's platform, once each.

A mixin of `bot.core.Bot` (kept apart so the handling of a message reads on its own): it uses
the bot's dispatcher, store, outbox and hooks. Push platforms (Slack, Telegram) register an
`OutputChannel` per channel name (`BotHooks.output`); the core sends through it, under a
delivery claim per message uid so a platform's redelivery, a waiting worker and the sweeper
never send the same answer twice.
"""

from __future__ import annotations

import logging

from bot.channels import OutputChannel
from bot.dispatch import Handled
from bot.errors import REDIS_ERRORS
from bot.messages import InboundMessage, Reply

log = logging.getLogger("bot.core")


class Delivery:
    """`Bot.receive` and the sending half of the bot (see the module docstring)."""

    def receive(self, message: InboundMessage) -> Handled:
        """The one entry point of every channel: intake, ordered handling, delivery, acknowledgement, metrics.

        Returns once the message is handled. For a channel with a registered output (Slack,
        Telegram) the replies have then been sent through it, once per message however often
        the platform delivers it (`handled.delivered`: True, False when the platform refused,
        None when they were sent before or by someone else). Channels without one (REST, web
        chat) send `handled.replies` back themselves. A message Redis did not take (`queued`
        false) is answered only with the apology, never sent to a push platform: that platform
        is told to deliver it again instead.
        """
        handled = self.handle(message)
        output = self._output(message.channel)
        if output is not None and handled.queued:
            handled.delivered = self._deliver(message, handled, output)
        if handled.queued and not handled.duplicate:
            self._event("message", {"channel": message.channel})
        return handled

    def _output(self, channel: str) -> OutputChannel | None:
        return self.hooks.output(channel) if self.hooks.output is not None else None

    def _deliver(self, message: InboundMessage, handled: Handled, output: OutputChannel | None,
                 publish: bool = False) -> bool | None:
        """Send `handled.replies` through `output` unless they were sent already; whether they arrived.

        Exactly once per message uid, under the delivery claim (`claim_delivery`): a platform's
        redelivery, a waiter and the sweeper may all hold the same result. With `publish`, each
        reply also goes out on the live outbox (a web page connected to any worker shows it).
        A refusal (after the output's own retries) stops the rest and is marked in the
        transcript (`delivered: false`) so staff see it; the claim is freed for a redelivery.
        """
        if not self.claim_delivery(handled):
            return None  # sent already, or being sent by whoever else holds the claim
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
            self.finish_delivery(handled, sent)
        return sent

    def claim_delivery(self, handled: Handled) -> bool:
        """For push channels (Slack, Telegram): send `handled.replies` only when this returns True.

        A platform redelivers a message when it is not sure we answered; this tells a
        redelivery whose answer never went out (a crash between answering and sending)
        from one that was answered. Call `finish_delivery` afterwards.
        """
        try:
            return self.dispatcher.claim_delivery(handled)
        except REDIS_ERRORS:
            return not handled.duplicate

    def finish_delivery(self, handled: Handled, sent: bool) -> None:
        try:
            self.dispatcher.finish_delivery(handled, sent)
        except REDIS_ERRORS:
            log.warning("delivery of a handled message not recorded: Redis unavailable")

    def deliver_swept(self, uid: str, message: InboundMessage, replies: list[Reply]) -> bool:
        """`Dispatcher.on_swept`: deliver the replies of a message handled for nobody known to be waiting.

        That is a message a dead worker left behind, handled by this process's sweeper (or by
        a waiter that found it in `processing`). Its receiver is gone, so nobody would send its
        answer: here it goes out like a staff message, published on the outbox (a web page
        connected to any worker shows it live) and sent through the channel's output (push
        channels; pull channels have none), under the same delivery claim as `receive`, so a
        live waiter that also got the result does not send it again. False when the channel
        refused it (marked in the transcript for staff) or it was not ours to send.
        """
        if not replies:
            return True  # staff hold the conversation: nothing of the bot's to send
        handled = Handled(replies, uid=uid, conversation=message.conversation_key)
        return bool(self._deliver(message, handled, self._output(message.channel), publish=True))

    def _send(self, conversation: str, channel: str, reply: Reply, record: bool = True) -> bool:
        """Publish `reply` and hand it to the channel's output; whether the platform accepted it.

        The channel's output retries (Slack: its SDK's retry handlers) and raises once it gives
        up. With `record`, the reply goes into the transcript after the attempt, marked
        `delivered: false` when it failed, so staff see it (console, `/admin/escalations/{id}`).
        """
        self.outbox.publish(conversation, reply)
        delivered = True
        output = self._output(channel)
        if output is not None:
            try:
                output.send(conversation.partition(":")[2], reply)
            except Exception as exc:  # the message text is personal data: only the reason is logged
                delivered = False
                log.warning("delivering a message to %s failed (%s)", channel, type(exc).__name__)
        if record:
            self.store.append(conversation, reply.sender, reply.text, agent=reply.agent,
                              suggestions=list(reply.suggestions) or None,  # a reload redraws the buttons
                              delivered=None if delivered else False)
        return delivered
