"""What the dispatcher (`bot.dispatch`) takes and gives: the handler's outcome, a handled message, the hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.effects import Effect, Settle
from bot.messages import InboundMessage, Reply

Handler = Callable[[InboundMessage], "list[Reply] | Outcome"]
# Runs side effects of a committed message (outside its conversation), together where it can, and the
# settling write with them (dropping them from the outbox); see `Outcome`.
EffectsHook = Callable[[list[Effect], Settle | None], None]
# (uid, message, replies) of a message handled for nobody known to be waiting: see `Dispatcher.on_swept`.
SweptHook = Callable[[str, InboundMessage, list[Reply]], None]


class HandlingTimeout(TimeoutError):
    """The message is queued but was not handled in time (it will still be handled once)."""


@dataclass
class Outcome:
    """What a handler returns when its message changes more than its conversation.

    `effects` (`bot.effects.Effect` values: staff notifications, counters in
    other Redis slots) are committed with the replies, in the same fenced step, then run through
    `Dispatcher.on_effects` after the commit: a handling that dies or loses its lease leaves none
    behind, and a committed one is run by the sweeper if its worker dies before running them.
    """

    replies: list[Reply]
    effects: list[Effect]


@dataclass
class Handled:
    replies: list[Reply]
    duplicate: bool = False
    uid: str = ""
    conversation: str = ""  # its conversation_key, so `finish_delivery` can clear the undelivered note
    delivered: bool | None = None  # set by `Bot.receive` for push channels: see there

    @property
    def queued(self) -> bool:
        """False when Redis never took the message (the replies are then only the bot's apology)."""
        return bool(self.uid) or self.duplicate
