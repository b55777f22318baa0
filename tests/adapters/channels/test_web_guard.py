"""The web chat's guards (adapters/channels/web_guard.py) against a real uvicorn server, a real Redis and Debian's
chromium: the session travels only in the socket's first frame, never in a URL, and the page runs under a strict
Content-Security-Policy that lets only the configured sites frame it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from pydantic import ValidationError

from adapters.channels.web_guard import HELLO_SECONDS, SESSION_RE
from adapters.runtime.settings import Settings
from tests.support.liveserver import live_app
from tests.support.paths import REPO_ROOT
from tests.support.webchat import chat_socket

TOKEN = "web-guard-test-token-0123456789abcdef0"


class EmbeddingSite(ThreadingHTTPServer):
    """A company's own site on another 127.0.0.1 port: one page that frames the chat (`chat_url`, set later)."""

    chat_url = ""


class EmbeddingPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (f'<!doctype html><title>shop</title><h1>Our shop</h1>'
                f'<iframe id="chat" src="{self.server.chat_url}/" width="400" height="500"></iframe>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def site() -> Iterator[EmbeddingSite]:
    server = EmbeddingSite(("127.0.0.1", 0), EmbeddingPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def origin(server: EmbeddingSite) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def served(demo_model, redis_server, tmp_path_factory):
    """The app, whose chat one site (`allowed`) may frame and another (`denied`) may not."""
    with site() as allowed, site() as denied:
        settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                            FRONTDESK_REDIS_PREFIX=f"guard-{uuid.uuid4().hex[:8]}", FRONTDESK_ADMIN_TOKEN=TOKEN,
                            FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu",
                            FRONTDESK_KB=REPO_ROOT / "knowledge" / "demo",
                            FRONTDESK_FRAME_ANCESTORS=f"'self'  {origin(allowed)}")
        with live_app(settings, timeout=400) as url:  # the index builds slowly on a busy shared machine
            allowed.chat_url = denied.chat_url = url
            yield {"url": url, "ws": url.replace("http://", "ws://") + "/web/ws", "allowed": allowed, "denied": denied}


def frames_until_closed(ws, timeout: float = 30) -> tuple[list[dict], int, str]:
    """Every frame the server sends until it closes the socket, and its close code and reason."""
    from websockets.exceptions import ConnectionClosed

    frames = []
    try:
        while True:
            frames.append(json.loads(ws.recv(timeout=timeout)))
    except ConnectionClosed as closed:
        return frames, closed.rcvd.code, closed.rcvd.reason


def answered(ws, text: str, message_id: str) -> list[dict]:
    ws.send(json.dumps({"type": "message", "text": text, "id": message_id}))
    frames = [json.loads(ws.recv(timeout=60))]
    while frames[-1]["type"] != "ack":
        frames.append(json.loads(ws.recv(timeout=60)))
    return frames


# ---------------------------------------------------------------------- the socket's first frame
def test_a_socket_without_a_session_is_given_one_in_a_frame_and_it_resumes_the_conversation(served):
    with chat_socket(served["ws"]) as ws:
        issued = json.loads(ws.recv(timeout=10))
        assert issued["type"] == "session" and SESSION_RE.fullmatch(issued["session"]), issued
        assert json.loads(ws.recv(timeout=10)) == {"type": "history", "events": [], "id": None}
        assert any(f["type"] == "reply" for f in answered(ws, "hello", "m-1"))
    with chat_socket(served["ws"]) as other:
        assert json.loads(other.recv(timeout=10))["session"] != issued["session"]  # each new page its own

    with chat_socket(served["ws"], issued["session"]) as again:  # a reload: the stored session, in the hello
        history = json.loads(again.recv(timeout=10))
        assert history["type"] == "history"  # no new session: the one named is served
        assert [(e["role"], e["text"]) for e in history["events"]][:1] == [("customer", "hello")]


@pytest.mark.parametrize("bogus", ["short", "a" * 65, "has spaces in it ok", "é" * 20, 1234567890123456789, ["x"]])
def test_a_malformed_session_is_refused_with_1008_and_a_reason(served, bogus):
    from websockets.sync.client import connect

    with connect(served["ws"]) as ws:
        ws.send(json.dumps({"type": "hello", "session": bogus}))
        frames, code, reason = frames_until_closed(ws)
    assert code == 1008 and "session must be 16-64 characters" in reason, (code, reason)
    assert [f["type"] for f in frames] == ["error"]  # no history, no session of someone else's


@pytest.mark.parametrize("first", [json.dumps({"type": "message", "text": "hi", "id": "m-1"}), "not json",
                                   json.dumps({"type": "hello", "session": "x" * 2000}), b"\x00binary"])
def test_a_first_frame_that_is_not_a_hello_closes_with_1002(served, first):
    from websockets.sync.client import connect

    with connect(served["ws"]) as ws:
        ws.send(first)
        frames, code, reason = frames_until_closed(ws)
    assert code == 1002 and "first frame" in reason and [f["type"] for f in frames] == ["error"], (code, reason)


def test_no_hello_closes_the_socket_after_a_few_seconds(served):
    from websockets.sync.client import connect

    with connect(served["ws"]) as ws:
        started = time.monotonic()
        frames, code, reason = frames_until_closed(ws)
        waited = time.monotonic() - started
    assert code == 1002 and "no hello frame" in reason, (code, reason)
    assert HELLO_SECONDS - 0.5 <= waited <= HELLO_SECONDS + 10 and [f["type"] for f in frames] == ["error"]


def test_a_session_in_the_query_string_is_refused_never_used(served):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with chat_socket(served["ws"]) as ws:
        session = json.loads(ws.recv(timeout=10))["session"]
        json.loads(ws.recv(timeout=10))
        answered(ws, "where is my order", "m-1")
    for hello in ({"type": "hello"}, {"type": "hello", "session": session}):
        with connect(f"{served['ws']}?session={session}") as ws:
            with contextlib.suppress(ConnectionClosed):  # the server may have closed before the hello
                ws.send(json.dumps(hello))
            frames, code, reason = frames_until_closed(ws)
        assert code == 1002 and "never in the URL" in reason, (code, reason)
        assert [f["type"] for f in frames] == ["error"]  # the conversation is not shown
        assert "where is my order" not in json.dumps(frames)


# ---------------------------------------------------------------------- the page's headers
def directives(policy: str) -> dict[str, str]:
    return {name: value.strip() for name, _, value in (d.strip().partition(" ") for d in policy.split(";"))}


def test_the_chat_page_has_a_strict_policy_and_the_configured_frame_ancestors(served):
    page = httpx.get(f"{served['url']}/")
    assert page.status_code == 200 and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    host = served["url"].removeprefix("http://")
    assert directives(page.headers["content-security-policy"]) == {
        "default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self'",
        "connect-src": f"'self' ws://{host} wss://{host}", "object-src": "'none'", "base-uri": "'none'",
        "form-action": "'none'", "frame-ancestors": f"'self' {origin(served['allowed'])}"}
    assert "<script>" not in page.text  # nothing inline: the policy allows none
    # A Host header is the client's own: one that would add a directive is left out of the policy.
    forged = httpx.get(f"{served['url']}/", headers={"host": "x; script-src *"}).headers["content-security-policy"]
    assert directives(forged)["connect-src"] == "'self'" and "script-src *" not in forged
    for name in ("chat.js", "chat.css"):
        assert httpx.get(f"{served['url']}/web/{name}").headers["x-content-type-options"] == "nosniff"
    for staff_page in ("/console", "/console/review"):  # staff pages are never framed at all
        policy = directives(httpx.get(f"{served['url']}{staff_page}").headers["content-security-policy"])
        assert policy["frame-ancestors"] == "'none'" and policy["script-src"] == "'self'"


def test_frame_ancestors_is_checked_at_start_up():
    for good, written in [("'self'", "'self'"), ("'none'", "'none'"), ("", "'self'"),
                          ("'self'\n https://shop.example.com", "'self' https://shop.example.com"),
                          ("https://*.example.com:8443 http://127.0.0.1:5000", None)]:
        assert Settings(FRONTDESK_FRAME_ANCESTORS=good).frame_ancestors == (written or good)
    for bad in ("*", "https:", "'self'; script-src *", "https://shop.example.com/path", "'none' 'self'",
                "javascript://x", "'unsafe-inline'", "data:", "https://shop.example.com,https://b.example"):
        with pytest.raises(ValidationError, match="FRONTDESK_FRAME_ANCESTORS"):
            Settings(FRONTDESK_FRAME_ANCESTORS=bad)


# ---------------------------------------------------------------------- in the browser
def watch(page) -> tuple[list[str], list[str]]:
    """Every URL the page requests (documents, files, sockets) and every console error, as they happen (but the
    404 for the favicon the browser asks for by itself: the chat has none)."""
    urls, errors = [], []
    page.on("request", lambda request: urls.append(request.url))
    page.on("websocket", lambda socket: urls.append(socket.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error"
            and not message.location.get("url", "").endswith("/favicon.ico") else None)  # the browser's own ask
    page.on("pageerror", lambda error: errors.append(str(error)))
    return urls, errors


def say(frame, text: str) -> None:
    frame.get_by_label("Your message").fill(text)
    frame.get_by_label("Your message").press("Enter")


def test_the_session_is_in_no_url_the_browser_requests_and_a_reload_resumes(page, served):
    from playwright.sync_api import expect

    urls, errors = watch(page)
    page.goto(f"{served['url']}/")
    expect(page.locator("#status")).to_have_text("Connected")
    log = page.get_by_role("log")
    say(page, "hello")
    expect(log.locator(".msg-bot")).to_have_count(1)
    session = page.evaluate("localStorage.getItem('frontdesk.web.session')")
    assert session and SESSION_RE.fullmatch(session)  # the one the server sent in a frame

    page.reload()
    expect(page.locator("#status")).to_have_text("Connected")
    expect(log.locator(".msg-customer .text")).to_have_text(["hello"])  # resumed
    say(page, "where is my order")
    expect(log.locator(".msg-bot")).to_have_count(2)
    assert page.evaluate("localStorage.getItem('frontdesk.web.session')") == session
    sockets = [u for u in urls if u.startswith("ws://")]
    assert sockets == [served["ws"]] * 2, urls  # the recording works: both sockets, bare
    assert not [u for u in urls if session in u], urls
    assert not errors, errors  # nothing the policy refused, no script error

    # The policy is enforced: an inline script a bug let in would not run, and the refusal is reported.
    page.evaluate("""() => { const s = document.createElement('script');
                             s.textContent = 'window.inlineRan = 1'; document.body.appendChild(s); }""")
    assert page.evaluate("window.inlineRan") is None
    deadline = time.monotonic() + 10
    while not any("Content Security Policy" in e for e in errors):
        assert time.monotonic() < deadline, errors
        page.wait_for_timeout(100)


def test_only_the_configured_site_can_frame_the_chat(page, served):
    from playwright.sync_api import expect

    _, errors = watch(page)
    page.goto(f"{origin(served['allowed'])}/shop")  # FRONTDESK_FRAME_ANCESTORS names this one
    chat = page.frame_locator("#chat")
    expect(chat.locator("#status")).to_have_text("Connected")
    say(chat, "hello")
    expect(chat.get_by_role("log").locator(".msg-bot")).to_have_count(1)
    assert not errors, errors

    page.goto(f"{origin(served['denied'])}/shop")  # the same page on a site not named: the browser refuses it
    deadline = time.monotonic() + 15
    while not any("frame-ancestors" in e for e in errors):
        assert time.monotonic() < deadline, errors
        page.wait_for_timeout(100)
    assert chat.locator("#status").count() == 0 and chat.locator("#composer").count() == 0
    assert page.locator("h1").inner_text() == "Our shop"
