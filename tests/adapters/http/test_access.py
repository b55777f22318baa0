"""Access: admin routes and admin chat commands refused to strangers, and secrets never printed.

Three parts, each on the real app:
- every `/admin` route (enumerated from `app.routes`, so new ones are covered without editing
  this file), and any unknown `/admin/...` path, answers 401 before routing looks anything up;
- the `/reload` and `/queue` chat commands are refused to anyone not on the channel's allow-list,
  over `POST /chat` (whose `sender` any caller chooses, so it never grants admin) and through
  the bot core for Slack and Telegram users;
- a `frontdesk serve` process with every secret set to a recognisable value is driven through
  401s, 422s, malformed platform requests and crashed handlers, logging at DEBUG: neither its
  output nor any response (error pages, `/openapi.json`, `/metrics`) nor `Settings`' repr holds one.

Slack signature checks (missing, wrong, stale, tampered) and the Telegram webhook secret are
tested with the adapters:
`tests/adapters/channels/test_slack.py::test_unsigned_badly_signed_and_stale_requests_are_refused`,
`tests/adapters/channels/test_telegram.py::test_webhook_refuses_a_wrong_or_missing_secret_and_bad_bodies` and
`::test_webhook_without_a_secret_or_without_telegram_refuses_everything`; the platforms' own admin
commands in `test_slack.py::test_slash_command_is_for_admins_only` and
`test_telegram.py::test_admin_commands_are_for_allow_listed_users_only`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from adapters.http.app import create_app
from adapters.runtime.settings import Settings
from bot.messages import InboundMessage
from tests.adapters.runtime.test_serve import frontdesk
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.serverutil import ROOT, free_port, stop_server, wait_ready
from tests.support.standins.slack_api import BOT_TOKEN, TEAM_ID, SlackStandIn
from tests.support.standins.telegram_api import TelegramStandIn, message_update, private_chat, user

TOKEN = "adm1n-T0KEN-never-print-me-0123456789"
SLACK_ADMIN, TELEGRAM_ADMIN = "UADMIN1", "777"
DEMO_KB = ROOT / "knowledge" / "demo"
ADMIN_ONLY = "Sorry, that command is for administrators only."  # bot/templates.yaml: admin_only


@pytest.fixture(scope="module")
def client(tiny_model, redis_server, tmp_path_factory):
    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"access-{uuid.uuid4().hex[:6]}", FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu", FRONTDESK_KB=DEMO_KB,
                        FRONTDESK_RATE_LIMIT="100000/60", SLACK_ADMIN_USERS=f" {SLACK_ADMIN} ,UADMIN2",
                        TELEGRAM_ADMIN_USERS=f"{TELEGRAM_ADMIN}, 778")
    with TestClient(create_app(settings)) as test_client:
        deadline = time.monotonic() + 180
        while test_client.get("/readyz").status_code != 200 or test_client.app.state.components.bot is None:
            assert time.monotonic() < deadline, test_client.get("/readyz").json()
            time.sleep(0.1)
        yield test_client


# ---------------------------------------------------------------------- admin routes
def all_routes(routes: list, prefix: str = "") -> list[tuple[str, set[str]]]:
    """(path, methods) of every HTTP route, descending into included routers.

    Newer FastAPI keeps an included router as one entry (`original_router`, with the include's
    own `prefix`) instead of copying its routes into `app.routes`; older versions copy them.
    """
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            found += all_routes(included.routes, prefix + getattr(context, "prefix", ""))
        elif getattr(route, "methods", None):
            found.append((prefix + route.path, set(route.methods)))
    return found


def admin_routes(app) -> list[tuple[str, str]]:
    """(method, concrete path) for every route under /admin, path parameters filled with a made-up id."""
    admin = [(path, methods) for path, methods in all_routes(app.routes)
             if path == "/admin" or path.startswith("/admin/")]
    documented = {path for path in app.openapi()["paths"] if path.startswith("/admin")}
    assert documented <= {path for path, _ in admin}, "the route walk missed documented admin routes"
    return [(method, re.sub(r"\{[^}]+\}", "no-such-id", path)) for path, methods in admin for method in sorted(methods)]


BODY = {"agent": "sam", "text": "hello"}  # valid for every admin POST, so only the token decides
WRONG = {"no header": None, "wrong token": "Bearer not-the-token", "token plus a character": f"Bearer {TOKEN}x",
         "a prefix of the token": f"Bearer {TOKEN[:-1]}", "scheme only": "Bearer",
         "no scheme": TOKEN, "Token scheme": f"Token {TOKEN}", "Basic scheme": "Basic " + base64.b64encode(
             f"admin:{TOKEN}".encode()).decode(), "token in the scheme's place": f"{TOKEN} Bearer"}


def refused(response) -> None:
    assert response.status_code == 401, (response.request.method, response.request.url, response.text)
    assert response.json()["detail"] and response.headers["www-authenticate"] == "Bearer"


@pytest.mark.slow
def test_every_admin_route_refuses_requests_without_the_right_bearer_token(client):
    routes = admin_routes(client.app)
    # The contract's routes are among those found (so the enumeration itself cannot silently find nothing).
    assert {("POST", "/admin/faq/reload"), ("GET", "/admin/faq"), ("GET", "/admin/escalations"),
            ("POST", "/admin/escalations/no-such-id/claim"), ("POST", "/admin/escalations/no-such-id/reply"),
            ("POST", "/admin/escalations/no-such-id/resolve")} <= set(routes)
    for method, path in routes:
        for header in WRONG.values():
            headers = {"Authorization": header} if header is not None else {}
            refused(client.request(method, path, json=BODY, headers=headers))
        # The same request with the token gets past the gate: the route itself answers (a 404 for the made-up id,
        # a 409, a 422 ...), never a refusal and never a crash.
        passed = client.request(method, path, json=BODY, headers={"Authorization": f"Bearer {TOKEN}"})
        assert passed.status_code not in (401, 403) and passed.status_code < 500, (method, path, passed.status_code,
                                                                                   passed.text[:200])


@pytest.mark.slow
def test_unknown_admin_paths_and_bad_bodies_are_refused_before_any_lookup(client):
    unknown = [("GET", "/admin"), ("GET", "/admin/"), ("GET", "/admin/whatever"), ("DELETE", "/admin/faq"),
               ("PUT", "/admin/escalations"), ("POST", "/admin/escalations/no-such-id/delete"),
               ("GET", "/admin/faq/reload/extra"), ("OPTIONS", "/admin/faq"), ("HEAD", "/admin/escalations")]
    for method, path in unknown:
        response = client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401, (method, path, response.status_code)
        # With the token the same paths are unknown (404/405): so the 401 came before routing, not from a route.
        known = client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code
        assert known in (404, 405) or (method == "HEAD" and known == 200), (method, path, known)
    # A body the route would reject (422), or an id it would not find (404): still 401 first.
    for body in (b"not json", b"{}", b'{"agent": NaN}'):
        refused(client.post("/admin/escalations/no-such-id/claim", content=body,
                            headers={"content-type": "application/json"}))


def test_without_a_configured_token_every_admin_route_is_refused(tmp_path):
    # No lifespan needed: the gate decides from the settings alone.
    app = create_app(Settings(FRONTDESK_HOME=tmp_path, FRONTDESK_ADMIN_TOKEN=""))
    bare = TestClient(app)
    for method, path in admin_routes(app):
        for header in ("Bearer ", "Bearer None", "Bearer null", f"Bearer {TOKEN}", None):
            refused(bare.request(method, path, json=BODY, headers={"Authorization": header} if header else {}))


@pytest.mark.slow
def test_static_routes_serve_only_their_own_files(client):
    """The web chat's and console's asset routes take a name from the URL: nothing else on disk is reachable."""
    for path in ("/web/..%2F..%2Fpyproject.toml", "/web/%2e%2e%2fapp.py", "/console/..%2Fconsole.py",
                 "/console/%2e%2e%2f%2e%2e%2fpyproject.toml", "/web/index.html", "/console/index.html",
                 "/console/console.js%00.html", "/web/chat.js/..%2f..%2f..%2fsettings.py"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert "[project]" not in response.text and "import" not in response.text
    assert client.get("/web/chat.js").status_code == client.get("/console/console.js").status_code == 200


# ---------------------------------------------------------------------- admin chat commands
def chat(client: TestClient, sender: str, text: str) -> list[str]:
    response = client.post("/chat", json={"sender": sender, "message": text}, headers=CHAT_AUTH)
    assert response.status_code == 200, response.text
    return [reply["text"] for reply in response.json()["replies"]]


def core(client: TestClient, channel: str, user_id: str, text: str) -> str:
    """One message through the bot core as the Slack or Telegram adapter hands it over."""
    bot = client.app.state.components.bot
    handled = bot.handle(InboundMessage(channel, f"{user_id}-{uuid.uuid4().hex[:6]}", user_id, text,
                                        message_id=uuid.uuid4().hex))
    [reply] = handled.replies
    return reply.text


@pytest.mark.slow
def test_admin_chat_commands_are_refused_over_post_chat_whoever_the_sender_claims_to_be(client):
    chat(client, "needs-help", "/human")
    escalation = client.get("/admin/escalations", headers={"Authorization": f"Bearer {TOKEN}"}).json()[0]["id"]
    # POST /chat callers choose their `sender`: naming an allow-listed Slack or Telegram admin grants nothing.
    for sender in ("stranger", SLACK_ADMIN, TELEGRAM_ADMIN):
        for command in ("/reload", "/queue", "/RELOAD now", "  /queue  "):
            replies = chat(client, sender, command)
            assert replies == [ADMIN_ONLY], (sender, command, replies)
            assert escalation not in " ".join(replies)


@pytest.mark.slow
def test_admin_chat_commands_through_the_bot_core_need_the_channels_allow_list(client):
    chat(client, "needs-help-too", "/human")
    escalation = client.get("/admin/escalations", headers={"Authorization": f"Bearer {TOKEN}"}).json()[0]["id"]
    refusals = [("slack", "UCUSTOMER"), ("telegram", "888"), ("slack", TELEGRAM_ADMIN), ("telegram", SLACK_ADMIN),
                ("web", SLACK_ADMIN), ("slack", f" {SLACK_ADMIN}"), ("slack", SLACK_ADMIN.lower())]
    for channel, user_id in refusals:  # strangers, and admins of another channel (or almost the right id)
        for command in ("/reload", "/queue"):
            assert core(client, channel, user_id, command) == ADMIN_ONLY, (channel, user_id, command)
    for channel, user_id in (("slack", SLACK_ADMIN), ("slack", "UADMIN2"), ("telegram", TELEGRAM_ADMIN)):
        listing = core(client, channel, user_id, "/queue")
        assert listing.startswith("Escalations:") and escalation in listing, listing
        assert core(client, channel, user_id, "/reload").startswith("Knowledge base reloaded"), (channel, user_id)


# ---------------------------------------------------------------------- secrets never printed
SECRETS = {"FRONTDESK_ADMIN_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": "s1gning-SECRET-never-print-me",
           "SLACK_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_BOT_TOKEN": "7000000001:AAtelegramSECRETneverPRINTme0123456789",
           "TELEGRAM_WEBHOOK_SECRET": "w3bhook-SECRET-never-print-me",
           "FRONTDESK_CHAT_TOKEN": "ch4t-TOKEN-never-print-me-0123456789abc",
           "FRONTDESK_PREDICT_TOKEN": "pr3dict-TOKEN-never-print-me-0123456789"}
SERVED_CHAT = {"Authorization": f"Bearer {SECRETS['FRONTDESK_CHAT_TOKEN']}"}


def test_settings_never_show_a_secret_in_repr_str_or_dump():
    settings = Settings(**SECRETS)
    for shown in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump()),
                  repr(settings.model_dump())):
        for name, secret in SECRETS.items():
            assert secret not in shown, name


def slack_signed(body: str, secret: str = SECRETS["SLACK_SIGNING_SECRET"], age: int = 0) -> dict:
    stamp = str(int(time.time()) - age)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def slack_dm(text: object, channel: str = "DSECRETS") -> str:
    ts = f"{time.time():.6f}"
    return json.dumps({"type": "event_callback", "team_id": TEAM_ID, "event_id": f"Ev{uuid.uuid4().hex[:8]}",
                       "event": {"type": "message", "channel": channel, "channel_type": "im", "user": "UCUST9",
                                 "text": text, "ts": ts, "event_ts": ts}})


@pytest.fixture(scope="module")
def served(tiny_model, redis_server, tmp_path_factory):
    """`frontdesk serve` with every secret set, Slack and Telegram pointed at stand-ins, logging at DEBUG."""
    home = tmp_path_factory.mktemp("secrets-home")
    with SlackStandIn(users={"UCUST9": "Casey"}) as slack, TelegramStandIn(SECRETS["TELEGRAM_BOT_TOKEN"]) as tg:
        port = free_port()
        env = {**SECRETS, "FRONTDESK_MODEL_DIR": str(tiny_model), "FRONTDESK_KB": str(DEMO_KB),
               "FRONTDESK_HOME": str(home), "REDIS_URL": f"unix://{redis_server.socket_file}",
               "FRONTDESK_REDIS_PREFIX": f"secrets-{uuid.uuid4().hex[:6]}", "FRONTDESK_DEVICE": "cpu",
               "FRONTDESK_LOG_LEVEL": "DEBUG", "SLACK_API_URL": slack.api_url, "SLACK_SUPPORT_CHANNEL": "CSUPPORT",
               "TELEGRAM_API_URL": tg.api_url, "FRONTDESK_RATE_LIMIT": "100000/60"}
        log_path = home / "serve.log"
        with open(log_path, "wb") as log:
            process = frontdesk(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
            try:
                wait_ready(f"http://127.0.0.1:{port}", process)
                deadline = time.monotonic() + 60  # ready: model, index, Redis; the bot is built just after
                while httpx.post(f"http://127.0.0.1:{port}/chat", json={"sender": "warm-up", "message": "hi"},
                                 headers=SERVED_CHAT, timeout=30).status_code != 200:
                    assert time.monotonic() < deadline, "the bot never became ready"
                    time.sleep(0.2)
                yield f"http://127.0.0.1:{port}", slack, tg, process, log_path
            finally:
                stop_server(process)


@pytest.mark.slow
def test_secrets_never_appear_in_logs_error_pages_or_the_schema(served):
    url, slack, tg, process, log_path = served
    responses: list[httpx.Response] = []

    def send(method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(method, f"{url}{path}", timeout=60, **kwargs)
        responses.append(response)
        return response

    for path in ("/openapi.json", "/docs", "/metrics", "/readyz", "/healthz", "/", "/no-such-page"):
        send("GET", path)
    for header in WRONG.values():  # 401s, the token itself sent in the wrong scheme among them
        send("POST", "/admin/faq/reload", headers={"Authorization": header} if header else {})
    for body in (b"{", b'{"sender": "a", "message": NaN}', b'{"sender": "\\ud800", "message": "x"}',
                 b"[" * 10_000, b'{"sender": "a", "message": ' + b"[" * 900 + b"]" * 900 + b"}"):
        assert send("POST", "/chat", content=body, headers={"content-type": "application/json", **SERVED_CHAT}
                    ).status_code < 500
        send("POST", "/predict", content=body, headers={"content-type": "application/json"})
    # The REST channel's and /predict's tokens: the wrong one refused (401), the right one served.
    for path in ("/chat", "/predict"):
        for header in WRONG.values():
            refused(send("POST", path, json={"sender": "cust", "message": "x", "text": "x"},
                         headers={"Authorization": header} if header else {}))
    assert send("POST", "/predict", json={"text": "hi"}, headers={
        "Authorization": f"Bearer {SECRETS['FRONTDESK_PREDICT_TOKEN']}"}).status_code == 200
    assert send("POST", "/chat", json={"sender": "cust", "message": "/human"}, headers=SERVED_CHAT).status_code == 200
    assert send("GET", "/admin/escalations", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200

    # Slack: unsigned, wrongly signed, stale, signed junk, a signed message, one whose handler crashes (text: null).
    hello = slack_dm("hello")
    assert send("POST", "/slack/events", content=hello, headers={"Content-Type": "application/json"}
                ).status_code == 401
    assert send("POST", "/slack/events", content=hello, headers=slack_signed(hello, secret="wrong")).status_code == 401
    assert send("POST", "/slack/events", content=hello, headers=slack_signed(hello, age=600)).status_code == 401
    assert send("POST", "/slack/events", content="{junk", headers=slack_signed("{junk")).status_code == 400
    assert send("POST", "/slack/events", content=hello, headers=slack_signed(hello)).status_code == 200
    crash = slack_dm(None, channel="DCRASH")
    assert send("POST", "/slack/events", content=crash, headers=slack_signed(crash)).status_code == 200
    assert slack.wait_for("chat.postMessage", lambda a: a.get("channel") == "DSECRETS", timeout=60)

    # Telegram: wrong secret, junk, a message whose text breaks the handler, and a reply Telegram refuses.
    header = "X-Telegram-Bot-Api-Secret-Token"
    update = {"update_id": 1, **message_update(private_chat(9001), user(9001), 1, "hello")}
    assert send("POST", "/telegram/webhook", json=update, headers={header: "wrong"}).status_code == 401
    assert send("POST", "/telegram/webhook", content=b"{", headers={header: SECRETS["TELEGRAM_WEBHOOK_SECRET"]}
                ).status_code == 400
    broken = {"update_id": 2, **message_update(private_chat(9001), user(9001), 2, "\ud800")}
    assert send("POST", "/telegram/webhook", content=json.dumps(broken),
                headers={header: SECRETS["TELEGRAM_WEBHOOK_SECRET"]}).status_code == 400
    tg.fail_next(SECRETS["TELEGRAM_BOT_TOKEN"], "sendMessage", 10, code=500)
    tg.inject(SECRETS["TELEGRAM_BOT_TOKEN"], message_update(private_chat(9002), user(9002), 1, "/help"))
    tg.wait(lambda: any(c["params"].get("chat_id") == 9002 for c in tg.calls(SECRETS["TELEGRAM_BOT_TOKEN"],
                                                                               "sendMessage")), what="a failed reply")

    time.sleep(1.0)  # let the last log lines (background handlers, retries) reach the file
    stop_server(process)
    output = Path(log_path).read_text(errors="replace")
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    # The run did log errors with their tracebacks (so there was something a secret could have leaked into).
    assert any("error" in record for record in records), output[-2000:]
    assert {r["logger"].split(".")[0] for r in records} >= {"frontdesk", "telegram"}, output[-2000:]
    for name, secret in SECRETS.items():
        assert secret not in output, f"{name} in the server's log"
        for response in responses:
            shown = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
            assert secret not in shown, f"{name} in the answer to {response.request.method} {response.request.url}"
