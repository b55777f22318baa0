"""Output channels for tests that drive the bot core directly: every reply handed to a plain function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.messages import Reply

Sink = Callable[[str, str, Reply], None]  # (conversation key, channel, reply)


@dataclass
class FunctionOutput:
    """A `bot.protocols.OutputChannel` for one channel name that calls `sink`; raising there is a refusal."""

    name: str
    sink: Sink

    def send(self, conversation_id: str, reply: Reply, in_reply_to: str | None = None) -> None:
        self.sink(f"{self.name}:{conversation_id}", self.name, reply)


def outputs(sink: Sink) -> Callable[[str], FunctionOutput]:
    """`BotHooks.output` giving every channel an output that calls `sink`."""
    return lambda channel: FunctionOutput(channel, sink)
