"""The platform-neutral message types every channel speaks.

Adapters turn a Slack event, a Telegram update or a web-chat post into one
`InboundMessage` and send each `Reply` back however their platform does it; nothing in
`bot/` knows which platform a message came from beyond the `channel` name.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class InboundMessage:
    """One message from a customer (or a staff member) on some channel."""

    channel: str  # "web", "rest", "slack", "telegram" or "shell" (the terminal chat)
    conversation_id: str  # unique within the channel (a Slack DM or thread, a Telegram chat, a web session)
    user_id: str
    text: str
    message_id: str | None = None  # the platform's id, for de-duplicating redeliveries
    display_name: str | None = None
    timestamp: float = field(default_factory=time.time)
    uid: str = ""  # our id for this delivery, set by the dispatcher; makes a re-run after a crash idempotent
    # The client's network address where the channel knows it (web chat, REST): escalations are limited per
    # address as well as per customer, so fresh ids from one machine cannot flood the staff desk.
    client_address: str | None = None

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


class SourceKind(StrEnum):
    FAQ = "faq"
    ARTICLE = "article"


@dataclass(frozen=True)
class Source:
    """Where an answer comes from: an FAQ entry, or a section of a help-center article (its citation).

    Channels render an article's citation natively ("title › section", linked to `url` where there
    is one), each escaping it for its platform; `label` is the plain text of that citation.
    """

    kind: SourceKind
    id: str
    title: str = ""
    section: str = ""
    url: str = ""

    @property
    def label(self) -> str:
        return " › ".join(part for part in (self.title, self.section) if part)

    def to_dict(self) -> dict:
        if self.kind is SourceKind.FAQ:
            return {"kind": str(self.kind), "id": self.id}
        return {"kind": str(self.kind), "id": self.id, "title": self.title, "section": self.section,
                "url": self.url}

    @classmethod
    def from_dict(cls, data: dict | None) -> Source | None:
        if not data:
            return None
        return cls(SourceKind(data["kind"]), data["id"], data.get("title", ""), data.get("section", ""),
                   data.get("url", ""))


@dataclass(frozen=True)
class Reply:
    """One message to the customer."""

    text: str
    suggestions: tuple[str, ...] = ()  # quick replies, shown as buttons where the channel can
    sender: str = "bot"  # "bot", "agent" or "system"
    agent: str | None = None  # the staff member, when sender == "agent"
    source: Source | None = None  # what a knowledge-base answer comes from (cited under it)
    suggestion_sources: tuple[Source | None, ...] = ()  # one per suggestion, where they come from the knowledge base

    def to_dict(self) -> dict:
        out = {"text": self.text, "suggestions": list(self.suggestions), "sender": self.sender,
               "agent": self.agent}
        if self.source is not None:
            out["source"] = self.source.to_dict()
        if self.suggestion_sources:
            out["suggestion_sources"] = [s.to_dict() if s else None for s in self.suggestion_sources]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Reply:
        return cls(text=data["text"], suggestions=tuple(data.get("suggestions") or ()),
                   sender=data.get("sender", "bot"), agent=data.get("agent"),
                   source=Source.from_dict(data.get("source")),
                   suggestion_sources=tuple(Source.from_dict(s) for s in data.get("suggestion_sources") or ()))
