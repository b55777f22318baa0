"""A stand-in for the Telegram Bot API on 127.0.0.1, for tests.

It speaks the Bot API's JSON (`{"ok": true, "result": ...}`, or `ok: false` with
`error_code`, `description` and, for flood control, `parameters.retry_after`) at
`/bot<token>/<method>`, takes parameters the ways Telegram does (query string, form or
JSON body), and keeps per-bot state the way Telegram does: a queue of updates served by
`getUpdates` with real offset semantics (an update is confirmed, and never served again,
once `getUpdates` is called with a higher offset; a long poll waits up to `timeout`), a
webhook that makes `getUpdates` answer 409, and chats known from the updates it served.
`sendMessage` checks what Telegram checks (known chat, HTML that parses, 1-4096
characters after parsing) and answers with a real Message object. Every call and every
confirmation is recorded in one ordered timeline, so a test can tell what came first.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from html import unescape

from aiohttp import web

ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span",
                "tg-spoiler", "tg-emoji", "blockquote"}
TOKEN_PART = re.compile(r"<(/?)([a-zA-Z][\w-]*)([^<>]*)>|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);|[<>&]")
JSON_FIELDS = {"reply_markup", "reply_parameters", "allowed_updates", "link_preview_options", "entities"}
INT_FIELDS = {"chat_id", "offset", "limit", "timeout", "message_id", "max_connections"}
BOOL_FIELDS = {"drop_pending_updates", "show_alert", "disable_notification"}


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


def parse_html(text: str) -> str:
    """The text Telegram would show for `text` with parse_mode HTML; ApiError where Telegram refuses it."""
    plain, stack, position = [], [], 0
    for match in TOKEN_PART.finditer(text):
        plain.append(text[position:match.start()])
        position = match.end()
        token = match.group(0)
        if match.group(2):
            closing, tag = match.group(1) == "/", match.group(2).lower()
            if tag not in ALLOWED_TAGS:
                raise ApiError(400, f"Bad Request: can't parse entities: unsupported start tag \"{tag}\"")
            if closing:
                if not stack or stack.pop() != tag:
                    raise ApiError(400, f"Bad Request: can't parse entities: unmatched end tag \"{tag}\"")
            else:
                stack.append(tag)
        elif token in "<>&":
            raise ApiError(400, f"Bad Request: can't parse entities: unescaped \"{token}\" at byte offset "
                           f"{len(text[:match.start()].encode())}")
        else:
            plain.append(unescape(token))
    if stack:
        raise ApiError(400, f"Bad Request: can't parse entities: can't find end tag corresponding to \"{stack[-1]}\"")
    plain.append(text[position:])
    return "".join(plain)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class BotState:
    """What Telegram holds for one bot token."""

    user: dict
    pending: list[dict] = field(default_factory=list)  # served but unconfirmed, and not yet served
    chats: dict[int, dict] = field(default_factory=dict)
    webhook: dict = field(default_factory=dict)  # url, secret_token, allowed_updates once set
    served: dict[int, int] = field(default_factory=dict)  # update_id -> times getUpdates returned it
    message_ids: itertools.count = field(default_factory=lambda: itertools.count(10_000))
    failures: dict[str, list[ApiError]] = field(default_factory=dict)  # method -> errors to answer next


class TelegramStandIn:
    """`with TelegramStandIn("123:ABC") as tg:`; `tg.api_url` is what TELEGRAM_API_URL should be."""

    def __init__(self, *tokens: str) -> None:
        self.bots: dict[str, BotState] = {}
        for token in tokens:
            bot_id = int(token.split(":")[0])
            self.bots[token] = BotState(user={"id": bot_id, "is_bot": True, "first_name": "Frontdesk",
                                              "username": f"frontdesk_{bot_id}_bot", "can_join_groups": True,
                                              "can_read_all_group_messages": False,
                                              "supports_inline_queries": False})
        self.timeline: list[dict] = []  # every call and confirmation, in order
        self._lock = threading.Lock()
        self._update_ids = itertools.count(1)
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="telegram-standin", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> TelegramStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        self._closing = True  # ends open long polls
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        self._runner = web.AppRunner(app, access_log=None)  # request lines carry the token; keep test logs clean
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # ------------------------------------------------------------------ test controls
    def inject(self, token: str, update: dict) -> int:
        """Queue an update (given an update_id unless it has one); its chat becomes known."""
        with self._lock:
            update = {"update_id": next(self._update_ids), **update}
            state = self.bots[token]
            for part in update.values():
                if isinstance(part, dict):
                    chat = part.get("chat") or (part.get("message") or {}).get("chat")
                    if chat:
                        state.chats[chat["id"]] = chat
            state.pending.append(update)
            return update["update_id"]

    def fail_next(self, token: str, method: str, times: int, code: int = 500, retry_after: int | None = None) -> None:
        """Answer the next `times` calls of `method` with an error (429 with `retry_after`: flood control)."""
        description = f"Too Many Requests: retry after {retry_after}" if retry_after else "Internal Server Error"
        with self._lock:
            self.bots[token].failures.setdefault(method, []).extend(
                ApiError(code, description, retry_after) for _ in range(times))

    def calls(self, token: str, method: str) -> list[dict]:
        with self._lock:
            return [e for e in self.timeline if e.get("token") == token and e.get("method") == method]

    def sent(self, token: str, chat_id: int) -> list[dict]:
        """Messages that `sendMessage` accepted for `chat_id`, in order."""
        return [c for c in self.calls(token, "sendMessage") if c.get("ok") and c["params"].get("chat_id") == chat_id]

    def event_index(self, predicate) -> int | None:
        with self._lock:
            return next((i for i, e in enumerate(self.timeline) if predicate(e)), None)

    def confirmed(self, token: str, update_id: int) -> bool:
        return self.event_index(lambda e: e.get("confirmed") == update_id and e["token"] == token) is not None

    def served(self, token: str, update_id: int) -> int:
        with self._lock:
            return self.bots[token].served.get(update_id, 0)

    def wait(self, predicate, timeout: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    # ------------------------------------------------------------------ the API
    async def _api(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        params = await self._params(request)
        entry = {"token": token, "method": method, "params": params, "ok": False}
        with self._lock:
            self.timeline.append(entry)
        try:
            state = self.bots.get(token)
            if state is None:
                raise ApiError(401, "Unauthorized")
            with self._lock:
                queued = state.failures.get(method)
                if queued:
                    raise queued.pop(0)
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(state, token, params)
        except ApiError as exc:
            body = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.retry_after:
                body["parameters"] = {"retry_after": exc.retry_after}
            entry["error"] = exc.description
            return web.json_response(body, status=exc.code)
        entry.update(ok=True, result=result)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    async def _params(request: web.Request) -> dict:
        params: dict = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
            return params
        params.update(await request.post())  # form fields: strings, structured values JSON-encoded
        for key, value in list(params.items()):
            if not isinstance(value, str):
                continue
            if key in JSON_FIELDS:
                params[key] = json.loads(value)
            elif key in INT_FIELDS:
                params[key] = int(value)
            elif key in BOOL_FIELDS:
                params[key] = value.lower() == "true"
        return params

    async def _m_getMe(self, state: BotState, token: str, params: dict) -> dict:
        return state.user

    async def _m_getUpdates(self, state: BotState, token: str, params: dict) -> list[dict]:
        if state.webhook.get("url"):
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset, limit = params.get("offset"), params.get("limit") or 100
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while True:
            with self._lock:
                if offset is not None:
                    for update in [u for u in state.pending if u["update_id"] < offset]:
                        state.pending.remove(update)
                        self.timeline.append({"token": token, "confirmed": update["update_id"]})
                batch = state.pending[:limit]
                if batch or time.monotonic() >= deadline or self._closing:
                    for update in batch:
                        state.served[update["update_id"]] = state.served.get(update["update_id"], 0) + 1
                    return batch
            await asyncio.sleep(0.02)

    async def _m_setWebhook(self, state: BotState, token: str, params: dict) -> bool:
        if not str(params.get("url", "")).startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        state.webhook = {k: params.get(k) for k in ("url", "secret_token", "allowed_updates")}
        return True

    async def _m_deleteWebhook(self, state: BotState, token: str, params: dict) -> bool:
        state.webhook = {}
        if params.get("drop_pending_updates"):
            with self._lock:
                state.pending.clear()
        return True

    async def _m_getWebhookInfo(self, state: BotState, token: str, params: dict) -> dict:
        return {"url": state.webhook.get("url") or "", "has_custom_certificate": False,
                "pending_update_count": len(state.pending)}

    async def _m_answerCallbackQuery(self, state: BotState, token: str, params: dict) -> bool:
        if not params.get("callback_query_id"):
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        return True

    async def _m_sendMessage(self, state: BotState, token: str, params: dict) -> dict:
        chat = state.chats.get(params.get("chat_id"))
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        text = str(params.get("text", ""))
        shown = parse_html(text) if str(params.get("parse_mode", "")).upper() == "HTML" else text
        if not shown.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(shown) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        params["shown"] = shown  # the text as the customer sees it
        message = {"message_id": next(state.message_ids), "date": int(time.time()), "chat": chat,
                   "from": state.user, "text": shown}
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message


# ---------------------------------------------------------------------- update builders
def user(user_id: int, first_name: str = "Ann") -> dict:
    return {"id": user_id, "is_bot": False, "first_name": first_name}


def private_chat(chat_id: int, first_name: str = "Ann") -> dict:
    return {"id": chat_id, "type": "private", "first_name": first_name}


def group_chat(chat_id: int, title: str = "Shop customers") -> dict:
    return {"id": chat_id, "type": "supergroup", "title": title}


def message_update(chat: dict, sender: dict, message_id: int, text: str | None = None, **extra) -> dict:
    """A `message` update; `text` gets bot_command/mention entities where Telegram would add them."""
    message = {"message_id": message_id, "date": int(time.time()), "chat": chat, "from": sender, **extra}
    if text is not None:
        message["text"] = text
        entities = []
        for match in re.finditer(r"(?<![\w/])/[a-zA-Z_]+(?:@\w+)?|@\w{5,}", text):
            offset = utf16_len(text[:match.start()])
            kind = "bot_command" if match.group().startswith("/") else "mention"
            if kind == "bot_command" and match.start() != 0:
                continue
            entities.append({"type": kind, "offset": offset, "length": utf16_len(match.group())})
        if entities:
            message["entities"] = entities
    return {"message": message}


STICKER = {"file_id": "CAACAgIAAxkBAAEB", "file_unique_id": "AgADxx", "type": "regular", "width": 512,
           "height": 512, "is_animated": False, "is_video": False, "emoji": "👍"}
