"""The platform-neutral message types every channel speaks.

Adapters turn a Slack event, a Telegram update or a web-chat post into one
`InboundMessage` and send each `Reply` back however their platform does it; nothing in
`bot/` knows which platform a message came from beyond the `channel` name.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class InboundMessage:
    """One message from a customer (or a staff member) on some channel."""

    channel: str  # "web", "rest", "slack", "telegram", "console"
    conversation_id: str  # unique within the channel (a Slack DM or thread, a Telegram chat, a web session)
    user_id: str
    text: str
    message_id: str | None = None  # the platform's id, for de-duplicating redeliveries
    display_name: str | None = None
    timestamp: float = field(default_factory=time.time)
    uid: str = ""  # our id for this delivery, set by the dispatcher; makes a re-run after a crash idempotent

    def __post_init__(self) -> None:
        # A browser that cut an emoji in half sends a lone surrogate; nothing downstream (JSON, Redis,
        # the tokenizer) can encode one. Keep the rest of the message and mark the broken character.
        if any("\ud800" <= c <= "\udfff" for c in self.text):
            object.__setattr__(self, "text", self.text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))

    @property
    def conversation_key(self) -> str:
        """Globally unique conversation id: channel plus the channel's own id."""
        return f"{self.channel}:{self.conversation_id}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InboundMessage:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Reply:
    """One message to the customer."""

    text: str
    suggestions: tuple[str, ...] = ()  # quick replies, shown as buttons where the channel can
    sender: str = "bot"  # "bot", "agent" or "system"
    agent: str | None = None  # the staff member, when sender == "agent"

    def to_dict(self) -> dict:
        return {"text": self.text, "suggestions": list(self.suggestions), "sender": self.sender,
                "agent": self.agent}

    @classmethod
    def from_dict(cls, data: dict) -> Reply:
        return cls(text=data["text"], suggestions=tuple(data.get("suggestions") or ()),
                   sender=data.get("sender", "bot"), agent=data.get("agent"))
