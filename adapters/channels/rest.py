"""The REST channel: `POST /chat` in, replies out; the same core as every other channel.

Replies come back in the response, so there is no adapter to start (`start` returns None).
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from adapters.http.dependencies import ComponentsDep
from adapters.runtime.components import Components
from bot.messages import InboundMessage

router = APIRouter(tags=["chat"])
CHANNEL = "rest"


class ChatRequest(BaseModel):
    sender: Annotated[str, Field(min_length=1, max_length=200, description="The customer's id on your side.")]
    message: Annotated[str, Field(max_length=5000)]
    message_id: Annotated[str | None, Field(max_length=200, description="Your id for de-duplicating retries.")] = None
    name: Annotated[str | None, Field(max_length=200)] = None


class ChatSource(TypedDict):
    """Where an answer comes from (`bot.messages.Source.to_dict()`): `{"kind": "faq", "id"}` for an FAQ entry,
    `{"kind": "article", "id", "title", "section", "url"}` for a help-center article's section (its citation;
    `url` may be "")."""

    kind: Literal["faq", "article"]
    id: str
    title: NotRequired[str]
    section: NotRequired[str]
    url: NotRequired[str]


class ChatReply(BaseModel):
    text: str
    suggestions: list[str] = []
    sender: str = "bot"
    agent: str | None = None
    source: Annotated[ChatSource | None, Field(description="What the answer quotes; null when nothing.")] = None
    suggestion_sources: Annotated[list[ChatSource | None], Field(
        description="Where each suggestion comes from, in the order of `suggestions` (null for one that is not "
                    "from the knowledge base); empty when none are.")] = []


class ChatResponse(BaseModel):
    replies: list[ChatReply]
    duplicate: bool = False


@router.post("/chat", response_model=ChatResponse)
async def chat(body: ChatRequest, components: ComponentsDep) -> ChatResponse:
    bot = components.need("bot")  # after the body's checks: a bad body is 422 even while the bot loads
    message = InboundMessage(CHANNEL, body.sender, body.sender, body.message, message_id=body.message_id,
                             display_name=body.name)
    handled = await run_in_threadpool(bot.receive, message)
    return ChatResponse(replies=[ChatReply(**r.to_dict()) for r in handled.replies], duplicate=handled.duplicate)


async def start(components: Components) -> None:
    """Nothing to start: the route is always mounted and answers in its response."""
    return None
