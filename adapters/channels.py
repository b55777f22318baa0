"""The registry of what each platform adapter offers the core (after Rasa's channel seam).

Inbound, every adapter builds a `bot.messages.InboundMessage` and calls `Bot.receive`, which
owns the rest: ordered handling, delivery, acknowledgement, metrics. Outbound, every reply
to a push platform (answers, a staff member's message, the hand-back) goes through the
`bot.channels.OutputChannel` registered here for the conversation's channel. An adapter that
can also show escalations to staff (Slack's support channel) implements `StaffNotifier`; the
registry fans each staff event out to all of them.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from bot.channels import OutputChannel

log = logging.getLogger("frontdesk")


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

    def output(self, channel: str) -> OutputChannel | None:
        """`BotHooks.output`: None for channels that take their replies from `Bot.receive` (web, rest)."""
        return self.outputs.get(channel)

    def on_escalation(self, record: dict, transcript: list[dict]) -> None:
        for notifier in self.notifiers:
            notifier.on_escalation(record, transcript)

    def on_customer_message(self, record: dict, text: str) -> None:
        for notifier in self.notifiers:
            notifier.on_customer_message(record, text)

    def on_status_change(self, record: dict) -> None:
        for notifier in self.notifiers:
            notifier.on_status_change(record)
