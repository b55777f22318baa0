"""A stand-in for Slack's Web API (and its Socket Mode WebSocket) on 127.0.0.1, for tests.

It speaks the JSON Slack speaks for the methods Frontdesk calls (auth.test,
chat.postMessage, chat.update, chat.delete, chat.postEphemeral, users.info, apps.connections.open),
checks the bearer token like Slack does (HTTP 200 with `"ok": false`), and records every
call so a test can wait for the posts the app made. `fail` makes chosen calls fail the way
Slack does under trouble (HTTP 5xx, or 429 with `Retry-After`), a scripted number of times
or for good; failed attempts are recorded too, with their status, and `find` skips them. `refuse` makes chosen
calls answer `"ok": false` with an error of Slack's (chat.delete's `cant_delete_message`). It also accepts posts to
`/respond/<name>` (the `response_url` of commands and actions) and can push Socket Mode
envelopes to a connected app and record their acknowledgements.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-standin-token"
APP_TOKEN = "xapp-standin-token"
BOT_USER_ID = "UFRONTDESK"
BOT_ID = "BFRONTDESK"
TEAM_ID = "TSTANDIN"


class SlackStandIn:
    """Run with `with SlackStandIn(users={...}) as slack:`; `slack.api_url` is what SLACK_API_URL should be."""

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = dict(users or {})  # user id -> display name, for users.info
        self.calls: list[dict] = []  # {"method": ..., "args": {...}, "status": ...} in arrival order
        # [method, where, responses left (None: fail for good)]; see `fail`
        self._failures: list[list] = []
        self._refusals: list[tuple[str, Callable[[dict], bool], str]] = []  # see `refuse`
        self.socket_acks: list[dict] = []
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="slack-standin", daemon=True)
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> SlackStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/respond/{name}", self._respond)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.base_url}/respond/{name}"

    # ------------------------------------------------------------------ failures on demand
    def fail(self, method: str, responses: list[int | tuple[int, int]] | None = None,
             where: Callable[[dict], bool] = lambda args: True) -> None:
        """Answer the next matching `method` calls with `responses` (a status, or `(429, retry_after)`), in order.

        `responses=None` fails every matching call with 500 from now on (until `heal`).
        """
        with self._lock:
            self._failures.append([method, where, None if responses is None else list(responses)])

    def refuse(self, method: str, error: str, where: Callable[[dict], bool] = lambda args: True) -> None:
        """Answer matching `method` calls `{"ok": false, "error": error}` (HTTP 200, as Slack does), until `heal`."""
        with self._lock:
            self._refusals.append((method, where, error))

    def heal(self) -> None:
        with self._lock:
            self._failures.clear()
            self._refusals.clear()

    def _scripted_failure(self, method: str, args: dict) -> int | tuple[int, int] | None:
        for entry in self._failures:
            name, where, left = entry
            if name != method or not where(args):
                continue
            if left is None:
                return 500
            if left:
                return left.pop(0)
        return None

    # ------------------------------------------------------------------ what tests read
    def find(self, method: str, where: Callable[[dict], bool] = lambda args: True) -> list[dict]:
        """The arguments of every recorded `method` call that `where` accepts and that succeeded."""
        with self._lock:
            return [c["args"] for c in self.calls
                    if c["method"] == method and c.get("status", 200) == 200 and not c.get("refused")
                    and where(c["args"])]

    def attempts(self, method: str, where: Callable[[dict], bool] = lambda args: True) -> list[dict]:
        """Every recorded `method` call `where` accepts, failed ones included: `{"args", "status", "at"}`."""
        with self._lock:
            return [{"args": c["args"], "status": c.get("status", 200), "at": c.get("at"),
                     "refused": c.get("refused")} for c in self.calls
                    if c["method"] == method and where(c["args"])]

    def wait_for(self, method: str, where: Callable[[dict], bool] = lambda args: True, count: int = 1,
                 timeout: float = 30.0) -> list[dict]:
        """Poll until at least `count` matching calls were made (the app answers after acknowledging)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(method, where)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{method}: {len(found)} matching call(s) after {timeout} s; "
                                     f"all calls: {[c['method'] for c in self.calls]}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ Socket Mode
    def push_envelope(self, envelope_type: str, payload: dict, retry_attempt: int = 0) -> str:
        """Send a Socket Mode envelope (events_api, interactive, slash_commands) to every connected app."""
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": envelope_type, "payload": payload,
                    "accepts_response_payload": envelope_type != "events_api",
                    "retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else ""}

        async def push() -> None:
            for socket in list(self._sockets):
                await socket.send_str(json.dumps(envelope))

        asyncio.run_coroutine_threadsafe(push(), self._loop).result(10)
        return envelope_id

    def wait_for_socket(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._sockets:
            if time.monotonic() > deadline:
                raise AssertionError("no Socket Mode connection")
            time.sleep(0.05)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                          "connection_info": {"app_id": "ASTANDIN"},
                                          "debug_info": {"host": "standin", "approximate_connection_time": 3600}}))
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    with self._lock:
                        self.socket_acks.append(json.loads(message.data))
        finally:
            self._sockets.remove(socket)
        return socket

    # ------------------------------------------------------------------ HTTP
    async def _respond(self, request: web.Request) -> web.Response:
        with self._lock:
            self.calls.append({"method": "response_url", "args": {"name": request.match_info["name"],
                                                                   **(await request.json())}})
        return web.Response(text="ok")

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict = dict(request.query)
        raw = await request.read()
        if raw:
            if request.content_type == "application/json":
                args.update(json.loads(raw))
            else:
                args.update(parse_qsl(raw.decode()))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or args.pop("token", "")
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        with self._lock:
            failure = self._scripted_failure(method, args)
            status, retry_after = failure if isinstance(failure, tuple) else (failure or 200, None)
            refused = next((error for name, where, error in self._refusals if name == method and where(args)), None)
            self.calls.append({"method": method, "args": args, "status": status, "at": time.monotonic(),
                               **({"refused": refused} if refused else {})})
        if status == 429:
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(retry_after if retry_after is not None else 1)})
        if status != 200:
            return web.Response(status=status, text="upstream trouble")  # Slack's 5xx pages are not JSON
        if refused is not None:
            return web.json_response({"ok": False, "error": refused})
        return web.json_response(handler(args))

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _auth_test(self, args: dict) -> dict:
        return {"ok": True, "url": "https://standin.slack.com/", "team": "Stand-in", "user": "frontdesk",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _chat_postMessage(self, args: dict) -> dict:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": args.get("text", ""), "ts": ts,
                   "team": TEAM_ID}
        for key in ("blocks", "thread_ts"):
            if args.get(key):
                message[key] = args[key]
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": message}

    def _chat_update(self, args: dict) -> dict:
        if not args.get("channel") or not args.get("ts"):
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": args["channel"], "ts": args["ts"], "text": args.get("text", ""),
                "message": {"text": args.get("text", ""), "blocks": args.get("blocks", [])}}

    def _chat_delete(self, args: dict) -> dict:
        if not args.get("channel") or not args.get("ts"):
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": args["channel"], "ts": args["ts"]}

    def _chat_postEphemeral(self, args: dict) -> dict:
        if not args.get("channel") or not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _users_info(self, args: dict) -> dict:
        user = args.get("user", "")
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        name = self.users[user]
        return {"ok": True, "user": {"id": user, "team_id": TEAM_ID, "name": name.lower().replace(" ", "."),
                                     "real_name": name, "is_bot": False,
                                     "profile": {"real_name": name, "display_name": name}}}

    def _apps_connections_open(self, args: dict) -> dict:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4()}"}
