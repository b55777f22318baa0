"""The REST channel: `POST /chat` in, replies out; the same core as every other channel.

Replies come back in the response, so there is no adapter to start (`start` returns None).
Only the operator's own servers call it: `adapters.http.api_gate` lets a request through with
FRONTDESK_CHAT_TOKEN or the admin token only, before the body is read. A caller's `message_id`s
are its own: the id handed to the bot names the credential that called and the sender, so
re-sending an id another caller or sender used is a new message, never a way to read the
replies they got. No client address goes with the message: every customer of the REST channel
arrives from the operator's own servers, so a per-address escalation limit would hold them all
back together; the per-customer limits apply.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal, NotRequired

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from adapters.http.api_gate import Credential, caller
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


def namespaced_id(credential: Credential, sender: str, message_id: str | None) -> str | None:
    """The de-duplication id the bot gets: which credential called (its name, never the token), a digest of
    the sender, then the caller's own id. The conversation key holds the sender too; this keeps the rule
    whole within the id itself."""
    if message_id is None:
        return None
    return f"{credential}:{hashlib.sha256(sender.encode()).hexdigest()[:16]}:{message_id}"


def rest_caller(request: Request) -> Credential:
    """The credential `adapters.http.api_gate` accepted; 401 should the route ever be reached without it."""
    found = caller(request.scope)
    if found is None:
        raise HTTPException(401, "POST /chat needs `Authorization: Bearer` with FRONTDESK_CHAT_TOKEN",
                            headers={"WWW-Authenticate": "Bearer"})
    return found


@router.post("/chat", response_model=ChatResponse)
async def chat(body: ChatRequest, components: ComponentsDep, request: Request) -> ChatResponse:
    credential = rest_caller(request)
    bot = components.need("bot")  # after the body's checks: a bad body is 422 even while the bot loads
    message = InboundMessage(CHANNEL, body.sender, body.sender, body.message,
                             message_id=namespaced_id(credential, body.sender, body.message_id),
                             display_name=body.name)
    handled = await run_in_threadpool(bot.receive, message)
    return ChatResponse(replies=[ChatReply(**r.to_dict()) for r in handled.replies], duplicate=handled.duplicate)


async def start(components: Components) -> None:
    """Nothing to start: the route is always mounted and answers in its response."""
    return None
