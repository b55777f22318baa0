"""The seam between the one bot core and each platform (after Rasa's `OutputChannel`).

Inbound, every adapter builds a `bot.messages.InboundMessage` and calls `Bot.handle`.
Outbound, replies the customer did not just ask for (a staff member's answer, the
hand-back) reach them through the `OutputChannel` registered for the conversation's
channel. An adapter that can also show escalations to staff (Slack's support channel)
implements `StaffNotifier`; the registry fans each staff event out to all of them.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from bot.messages import Reply

log = logging.getLogger("frontdesk")


@runtime_checkable
class OutputChannel(Protocol):
    """Sends replies to a customer on one platform."""

    name: str  # the `InboundMessage.channel` this adapter produces

    def send(self, conversation_id: str, reply: Reply) -> None:
        """Deliver `reply` into the platform conversation `conversation_id` (the channel's own id)."""


@runtime_checkable
class StaffNotifier(Protocol):
    """Shows escalations to staff somewhere (a Slack support channel, ...)."""

    def on_escalation(self, record: dict, transcript: list[dict]) -> None: ...

    def on_customer_message(self, record: dict, text: str) -> None: ...

    def on_status_change(self, record: dict) -> None: ...


class ChannelRegistry:
    """The output channels and staff notifiers a server process has switched on."""

    def __init__(self) -> None:
        self.outputs: dict[str, OutputChannel] = {}
        self.notifiers: list[StaffNotifier] = []

    def add(self, adapter: object) -> None:
        if isinstance(adapter, OutputChannel):
            self.outputs[adapter.name] = adapter
        if isinstance(adapter, StaffNotifier):
            self.notifiers.append(adapter)

    def deliver(self, conversation: str, channel: str, reply: Reply) -> None:
        """`BotHooks.deliver`: route by channel; channels without one (web, rest) rely on the bot's outbox."""
        output = self.outputs.get(channel)
        if output is None:
            return
        _, _, conversation_id = conversation.partition(":")
        output.send(conversation_id, reply)

    def on_escalation(self, record: dict, transcript: list[dict]) -> None:
        for notifier in self.notifiers:
            notifier.on_escalation(record, transcript)

    def on_customer_message(self, record: dict, text: str) -> None:
        for notifier in self.notifiers:
            notifier.on_customer_message(record, text)

    def on_status_change(self, record: dict) -> None:
        for notifier in self.notifiers:
            notifier.on_status_change(record)
