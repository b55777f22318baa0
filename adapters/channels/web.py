"""The web chat channel: a page at `/` that talks to the bot over a WebSocket at `/web/ws`.

The page keeps its session id in the browser's localStorage and names it in the socket's first
frame, never in a URL (`web_guard.receive_hello`; a page without one is given one). The server
uses its hash (`session_hash`: the session itself is a credential and goes nowhere) as
conversation id and user id on channel "web", so the conversation survives reloads: each new
socket then gets the transcript (`{"type": "history"}`) and the page redraws it. Sockets from
another site's page are refused (`origin_allowed`, FRONTDESK_ALLOWED_ORIGINS); the page may be
framed only by the sites FRONTDESK_FRAME_ANCESTORS names (`web_guard.page_headers`).

Frames (JSON text):
  page -> server  first `{"type": "hello", "session": ... | absent}` (answered `{"type": "session", ...}` when
                  the server made one), then `{"type": "message", "text": ..., "id": <client id, for de-duplicating
                  resends>}`
  server -> page  `{"type": "history", "events": [...]}` on connect (and again after a resend the bot
                  had already handled, so the page shows the replies it may have missed; a bot answer's
                  event carries its article citation as `source`),
                  `{"type": "reply", ...Reply.to_dict(), "in_reply_to": id | None}` for answers and for live
                  pushes (staff messages, "X joined", the hand-back; `in_reply_to` is None for those),
                  `{"type": "ack", "id": id}` once a message is handled (even when the bot adds nothing,
                  as while staff hold the conversation), `{"type": "error", "detail": ...}` for a bad frame.

Live pushes come from the bot's outbox (Redis pub/sub), so a staff action in any worker
reaches the socket held by this one. No `OutputChannel` is needed: `start` returns None.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from pathlib import Path

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from adapters.channels.web_guard import CLOSE_POLICY, page_headers, receive_hello
from adapters.http.client_address import settled
from adapters.http.dependencies import ComponentsDep, SettingsDep
from adapters.runtime.components import Components
from bot.messages import InboundMessage, Reply, Source

log = logging.getLogger("frontdesk")

CHANNEL = "web"
STATIC = Path(__file__).resolve().parents[1] / "static" / "webchat"
ASSETS = {"chat.css": "text/css; charset=utf-8", "chat.js": "text/javascript; charset=utf-8"}
MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TEXT = 5000  # the same limit as POST /chat
MAX_FRAME = 6 * MAX_TEXT + 1000  # JSON escapes a character in at most 6 ("\\u0001"); anything bigger is abuse
HISTORY_LAST = 50
SHOWN_ROLES = ("customer", "bot", "agent", "system")
# Closing codes (RFC 6455): 1013 try again later (bot still loading); the handshake's own are in web_guard.
CLOSE_TRY_LATER = 1013

router = APIRouter(tags=["web chat"])


def session_hash(session: str) -> str:
    """What stands for a web session everywhere past the socket: conversation and user id, Redis keys, logs,
    Slack posts, `/admin/escalations` (`user_id`) and `/admin/customers/web/{user_id}`.

    The session id is the customer's only credential (it returns their history and posts as them), so it
    never leaves this module. A short SHA-256 of it is stable (the same conversation after a reload, on any
    worker) and cannot be turned back into the session: the ids are 16-64 random characters.
    """
    return hashlib.sha256(f"frontdesk-web:{session}".encode()).hexdigest()[:20]


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Whether a page from `origin` may open the chat socket: the served host itself, or an allowed origin.

    Browsers always send Origin on a web socket, and it is the only thing that stops another site's page
    from talking to the bot as a visitor (cross-site web-socket hijacking). Clients that are not browsers
    send none and have nothing to hijack: they are let through.
    """
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if "*" in allowed or origin in allowed:
        return True
    _, _, netloc = origin.partition("://")
    if not host or not netloc:
        return False
    # A proxy passing `Host $host` (nginx) drops the port: then the host name alone has to match.
    return netloc.lower() == host.lower() or (":" not in host and netloc.lower().rsplit(":", 1)[0] == host.lower())


async def start(components: Components) -> None:
    """Nothing to start: the routes are always mounted and live delivery goes through the bot's outbox."""
    return None


@router.get("/", include_in_schema=False)
async def page(request: Request, settings: SettingsDep) -> FileResponse:
    """The chat page (plain HTML; its CSS and JS are served next to it), under a strict Content-Security-Policy."""
    headers = page_headers(settings.frame_ancestors, request.headers.get("host"))
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=headers)


@router.get("/web/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    """Only the page's own files, by exact name: nothing else on disk is reachable through this route."""
    if name not in ASSETS:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(STATIC / name, media_type=ASSETS[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


def public_history(events: list[dict]) -> list[dict]:
    """The transcript as the customer saw it: their messages and what was said to them.

    Left out: internal roles ("unanswered") and the bot's own notes to staff, which are
    "system" events carrying who did it (`by`: "claimed by sam") or the escalation they
    belong to ("escalated: asked_for_human"); what was said to the customer about those
    ("Sam has joined") is a separate "system" event without either.
    """
    shown = []
    for event in events:
        role = event.get("role")
        if role not in SHOWN_ROLES:
            continue
        if role == "system" and ("by" in event or "escalation_id" in event):
            continue
        item = {"role": role, "text": str(event.get("text", "")), "at": event.get("at"),
                "agent": event.get("agent") or (event.get("by") if role == "agent" else None),
                "suggestions": list(event.get("suggestions") or [])}
        source = _source(event.get("source"))
        if source is not None:
            item["source"] = source
        shown.append(item)
    return shown


def _source(stored) -> dict | None:
    """A transcript event's citation as `Source.to_dict()` (the shape reply frames carry); None if unreadable."""
    try:
        source = Source.from_dict(stored) if isinstance(stored, dict) else None
    except (KeyError, TypeError, ValueError):
        return None
    return source.to_dict() if source is not None else None


def parse_frame(raw: str | None) -> tuple[str, str | None]:
    """(text, client id) from one page frame; `ValueError` with a message for the page otherwise."""
    if raw is None:
        raise ValueError("send JSON text frames, not binary ones")
    if len(raw) > MAX_FRAME:
        raise ValueError(f"frame too large (a message may have at most {MAX_TEXT} characters)")
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: brackets nested thousands deep
        raise ValueError("frame is not valid JSON") from None
    if not isinstance(frame, dict) or frame.get("type") != "message":
        raise ValueError('expected {"type": "message", "text": ..., "id": ...}')
    text, client_id = frame.get("text"), frame.get("id")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('"text" must be a non-empty string')
    if len(text) > MAX_TEXT:
        raise ValueError(f"message too long ({len(text)} characters, at most {MAX_TEXT})")
    if client_id is not None and (not isinstance(client_id, str) or not MESSAGE_ID_RE.fullmatch(client_id)):
        raise ValueError('"id" must be 1-64 characters of A-Z, a-z, 0-9, "_" or "-"')
    return text, client_id


class Connection:
    """One open page: a single writer task owns the socket, everything else queues frames for it."""

    def __init__(self, websocket: WebSocket, bot, session: str):
        self.ws = websocket
        self.bot = bot
        self.session = session
        # Escalations are limited per client address too (bot.ratelimit): the address the socket came from, as
        # the address limit settled it (adapters.http.client_address); none for an exempt loopback peer, which is
        # the operator's own tools or an untrusted proxy on this host that every customer would share.
        client = settled(websocket.scope)
        self.client_address = client.bucket if client is not None and not client.exempt else None
        self.loop = asyncio.get_running_loop()
        self.out: asyncio.Queue[dict | None] = asyncio.Queue()
        self.history_sent = False
        self.early: list[Reply] = []  # pushes that arrived before the first history went out

    # -------------------------------------------------------------- outbox (the listener thread)
    def _on_push(self, reply: Reply) -> None:
        self.loop.call_soon_threadsafe(self._push, reply)

    def _push(self, reply: Reply) -> None:
        if self.history_sent:
            self.out.put_nowait({"type": "reply", **reply.to_dict(), "in_reply_to": None})
        else:
            self.early.append(reply)

    # -------------------------------------------------------------- the socket (event loop)
    async def _writer(self) -> None:
        while (frame := await self.out.get()) is not None:
            await self.ws.send_json(frame)

    async def _send_history(self, covers: str | None = None) -> None:
        """The transcript; `covers` names a resent message whose replies it now includes."""
        events = public_history(await run_in_threadpool(self.bot.history, CHANNEL, self.session, HISTORY_LAST))
        self.out.put_nowait({"type": "history", "events": events, "id": covers})
        if not self.history_sent:
            self.history_sent = True
            # Pushes that came while the history was read: skip what it already shows.
            tail = {(e["role"], e["text"]) for e in events[-10:]}
            for reply in self.early:
                if (reply.sender, reply.text) not in tail:
                    self._push(reply)
            self.early.clear()

    async def _handle(self, raw: str | None) -> None:
        try:
            text, client_id = parse_frame(raw)
        except ValueError as exc:
            self.out.put_nowait({"type": "error", "detail": str(exc), "id": None})
            return
        # Namespaced by session: a page must never get another session's replies by guessing its ids.
        message_id = f"{self.session}:{client_id}" if client_id else None
        message = InboundMessage(CHANNEL, self.session, self.session, text, message_id=message_id,
                                 client_address=self.client_address)
        try:
            handled = await run_in_threadpool(self.bot.receive, message)
        except Exception as exc:  # e.g. HandlingTimeout: it is still queued and will land in the transcript
            log.warning("web chat message not handled in time (%s)", type(exc).__name__)
            self.out.put_nowait({"type": "error", "id": client_id,
                                 "detail": "Sorry, that is taking longer than usual. Your message is kept; "
                                           "the answer will appear here."})
            return
        if handled.duplicate:
            # A resend after a reconnect: the replies are in the transcript now; redraw rather than repeat.
            await self._send_history(covers=client_id)
        else:
            for reply in handled.replies:
                self.out.put_nowait({"type": "reply", **reply.to_dict(), "in_reply_to": client_id})
        self.out.put_nowait({"type": "ack", "id": client_id})

    async def serve(self) -> None:
        # Watching before the history is read, so nothing published in between is lost.
        unwatch = await run_in_threadpool(self.bot.outbox.watch, f"{CHANNEL}:{self.session}", self._on_push)
        writer = asyncio.create_task(self._writer())
        try:
            await self._send_history()
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self._handle(message.get("text"))
                if writer.done():  # the page went away while we were answering
                    break
        except (WebSocketDisconnect, RuntimeError):
            pass  # the page closed or reloaded; nothing to tell anyone
        except Exception:  # Redis gone mid-conversation, ...: drop this socket, the page reconnects
            log.exception("web chat connection failed")
            with contextlib.suppress(Exception):
                await self.ws.close(CLOSE_TRY_LATER)
        finally:
            unwatch()
            self.out.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer


@router.websocket("/web/ws")
async def chat_socket(websocket: WebSocket, components: ComponentsDep) -> None:
    """One page's live connection: its hello (the session), the history, then its messages answered and staff
    messages pushed."""
    allowed = components.settings.origin_list
    if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), allowed):
        log.warning("web chat socket refused: origin not allowed (FRONTDESK_ALLOWED_ORIGINS)")
        await websocket.close(CLOSE_POLICY)  # before accepting: the handshake is answered 403
        return
    await websocket.accept()
    bot = components.bot
    if bot is None:
        await websocket.send_json({"type": "error", "detail": "the assistant is still starting; reconnecting"})
        await websocket.close(CLOSE_TRY_LATER)
        return
    session = await receive_hello(websocket)
    if session is None:  # refused and closed, or the page went away
        return
    await Connection(websocket, bot, session_hash(session)).serve()
