"""What guards the web chat's public surface: how its socket learns the session, and the page's security headers.

The session id is the customer's only credential: whoever holds it reads the conversation and writes as the
customer. So it never travels in a URL, which proxies and servers write to their logs (the shipped nginx logs
request lines). The page opens `/web/ws` with no query and names its session in the first frame; a page that
has none is given one, in a frame too (docs/PROTOCOL.md):

  page -> server  `{"type": "hello", "session": "<16-64 of A-Za-z0-9_->"}`, or `{"type": "hello"}` for a new one
  server -> page  `{"type": "session", "session": ...}` when the server made the session, then the history

The server waits HELLO_SECONDS for the hello; none, or a first frame that is not one, closes the socket with
1002 (protocol error) and a reason. A malformed session closes it with 1008, after which the page asks for a new
one. A `session` in the query string is refused (1002), never used: the id is in a log already, and a client
that still puts it there must learn so rather than quietly lose its conversation.

The page's headers (`page_headers`) are a strict Content-Security-Policy: its own scripts and styles only, its
socket, no plugins, no `<base>`, no form posts, and framing only by the pages FRONTDESK_FRAME_ANCESTORS names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from dataclasses import dataclass

from fastapi import WebSocket, WebSocketDisconnect

SESSION_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
HELLO_SECONDS = 5.0  # a page sends its hello as soon as the socket opens; this is for a slow phone network
MAX_HELLO = 1000  # bytes: a hello is tiny; anything bigger is not one
# Closing codes (RFC 6455): 1002 protocol error (no hello, or the session in the URL), 1008 policy violation
# (a malformed session: the client should ask for a new one).
CLOSE_PROTOCOL, CLOSE_POLICY = 1002, 1008
SESSION_RULE = 'session must be 16-64 characters of A-Z, a-z, 0-9, "_" or "-"'
# A Host header fit to be written into the policy (name or [IPv6], optional port); anything else is left out.
HOST_RE = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


@dataclass(frozen=True)
class Hello:
    """The outcome of a socket's first frame: the session to serve, or why the socket is closed (`refusal`)."""

    session: str | None = None
    issued: bool = False  # the server made this session (so it must tell the page)
    code: int = CLOSE_PROTOCOL
    refusal: str | None = None


def new_session() -> str:
    """A fresh session id: 192 random bits, 32 URL-safe characters (within SESSION_RE)."""
    return secrets.token_urlsafe(24)


def parse_hello(raw: str | None) -> Hello:
    """The session a first frame names, a new one if it names none, or the refusal (code and reason)."""
    if raw is None or len(raw) > MAX_HELLO:
        return Hello(refusal='the first frame must be a JSON text frame {"type": "hello"}')
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        frame = None
    if not isinstance(frame, dict) or frame.get("type") != "hello":
        return Hello(refusal='the first frame must be {"type": "hello", "session": ...}')
    session = frame.get("session")
    if session is None:
        return Hello(session=new_session(), issued=True)
    if not isinstance(session, str) or not SESSION_RE.fullmatch(session):
        return Hello(code=CLOSE_POLICY, refusal=SESSION_RULE)
    return Hello(session=session)


async def receive_hello(websocket: WebSocket, seconds: float = HELLO_SECONDS) -> str | None:
    """The accepted socket's session, from its first frame (sent back when the server made it); None once the
    socket is closed for want of one. A session in the query string is refused before anything is read."""
    if "session" in websocket.query_params:
        return await _refuse(websocket, Hello(refusal='the session goes in the first frame {"type": "hello", '
                                                      '"session": ...}, never in the URL'))
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout=seconds)
    except TimeoutError:
        return await _refuse(websocket, Hello(refusal=f"no hello frame within {seconds:g} s"))
    if message["type"] == "websocket.disconnect":
        return None
    hello = parse_hello(message.get("text"))
    if hello.refusal is not None:
        return await _refuse(websocket, hello)
    if hello.issued:
        await websocket.send_json({"type": "session", "session": hello.session})
    return hello.session


async def _refuse(websocket: WebSocket, hello: Hello) -> None:
    """An error frame for clients that read frames, then the close with the same reason for those that read codes."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client may be gone already
        await websocket.send_json({"type": "error", "detail": hello.refusal, "id": None})
        await websocket.close(hello.code, reason=hello.refusal)
    return None


def page_headers(frame_ancestors: str, host: str | None) -> dict[str, str]:
    """The chat page's security headers. `frame_ancestors` is FRONTDESK_FRAME_ANCESTORS (checked at start-up)."""
    # 'self' covers the page's own ws:/wss: socket in current browsers (CSP 3); the host's own schemes are named
    # too for those that predate it. The Host header is the client's: written in only when it is a plain host.
    sockets = f" ws://{host} wss://{host}" if host and HOST_RE.fullmatch(host) else ""
    policy = ["default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
              f"connect-src 'self'{sockets}", "object-src 'none'", "base-uri 'none'", "form-action 'none'",
              f"frame-ancestors {' '.join(frame_ancestors.split())}"]
    return {"Content-Security-Policy": "; ".join(policy), "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
