"""The registry of what each platform adapter offers the core (after Rasa's channel seam).

Inbound, every adapter builds a `bot.messages.InboundMessage` and calls `Bot.receive`, which
owns the rest: ordered handling, delivery, acknowledgement, metrics. Outbound, every reply
to a push platform (answers, a staff member's message, the hand-back) goes through the
`bot.protocols.OutputChannel` registered here for the conversation's channel. An adapter that
can also show escalations to staff (Slack's support channel) implements `StaffNotifier`; the
registry fans each staff event out to all of them. One that can delete the bot's own posts (Slack)
implements `bot.protocols.PostRemover`, which a customer's erasure reaches through `remover`.
It is part of the process's components (`Components.channels`, which the bot's hooks are wired
to), so it lives here in runtime: the channels (adapters/channels) build on runtime, never the other
way round.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from bot.escalations import Escalation
from bot.protocols import OutputChannel, PostRemover

log = logging.getLogger("frontdesk")


@runtime_checkable
class StaffNotifier(Protocol):
    """Shows escalations to staff somewhere (a Slack support channel, ...)."""

    def on_escalation(self, escalation: Escalation, transcript: list[dict]) -> None: ...

    def on_customer_message(self, escalation: Escalation, text: str, author: str = "") -> None: ...

    def on_status_change(self, escalation: Escalation) -> None: ...


class ChannelRegistry:
    """The output channels and staff notifiers a server process has switched on."""

    def __init__(self) -> None:
        self.outputs: dict[str, OutputChannel] = {}
        self.notifiers: list[StaffNotifier] = []
        self.removers: dict[str, PostRemover] = {}  # platform -> what deletes the bot's posts there (erasure)

    def add(self, adapter: object) -> None:
        if isinstance(adapter, OutputChannel):
            self.outputs[adapter.name] = adapter
        if isinstance(adapter, StaffNotifier):
            self.notifiers.append(adapter)
        if isinstance(adapter, PostRemover):
            self.removers[adapter.name] = adapter

    def output(self, channel: str) -> OutputChannel | None:
        """`BotHooks.output`: None for channels that take their replies from `Bot.receive` (web, rest)."""
        return self.outputs.get(channel)

    def on_escalation(self, escalation: Escalation, transcript: list[dict]) -> None:
        for notifier in self.notifiers:
            notifier.on_escalation(escalation, transcript)

    def remover(self, platform: str) -> PostRemover | None:
        """`CustomerData`'s way to the platform's post deletion; None where that platform is not running here."""
        return self.removers.get(platform)

    def on_customer_message(self, escalation: Escalation, text: str, author: str = "") -> None:
        for notifier in self.notifiers:
            notifier.on_customer_message(escalation, text, author)

    def on_status_change(self, escalation: Escalation) -> None:
        for notifier in self.notifiers:
            notifier.on_status_change(escalation)
