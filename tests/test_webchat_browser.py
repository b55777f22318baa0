"""The web chat at `/`, in a real browser (Debian's chromium through Playwright) against the real app.

The app runs in a real uvicorn server on 127.0.0.1 with the demo model, the demo FAQ and
a real Redis; the page talks to it over its WebSocket exactly as in production.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

import httpx
import pytest

from adapters.settings import Settings
from tests.liveserver import live_app

TOKEN = "webchat-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def base_url(demo_model, redis_server, tmp_path_factory):
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"webchat-{uuid.uuid4().hex[:8]}", FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu",
                        FRONTDESK_KB=Path(__file__).resolve().parent.parent / "knowledge" / "demo")
    with live_app(settings) as url:
        yield url


def open_chat(page, base_url: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/")
    expect(page.locator("#status")).to_have_text("Connected")


def say(page, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_label("Your message").press("Enter")


def test_chat_reply_suggestion_click_and_reload_keeps_the_conversation(page, base_url):
    from playwright.sync_api import expect

    open_chat(page, base_url)
    log = page.get_by_role("log")
    say(page, "hello")
    expect(log.locator(".msg-bot").last).to_contain_text("Larkspur Home assistant")
    expect(log.locator(".msg-customer .text")).to_have_text(["hello"])

    say(page, "tax")  # too vague for one FAQ answer: the bot offers the closest questions as buttons
    button = page.get_by_role("group", name="Suggested replies").get_by_role("button", name="Do you charge sales tax?")
    expect(button).to_be_visible()
    button.click()
    expect(log.locator(".msg-customer").last).to_contain_text("Do you charge sales tax?")
    expect(log.locator(".msg-bot").last).to_contain_text("sales tax is calculated at checkout")
    expect(page.locator("#suggestions button")).to_have_count(0)

    hostile = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    say(page, hostile)  # shown as the characters typed, never as markup
    expect(log.locator(".msg-customer .text").last).to_have_text(hostile)
    expect(log.locator(".msg-bot")).to_have_count(4)
    expect(log.locator(".msg-customer.pending")).to_have_count(0)
    session = page.evaluate("localStorage.getItem('frontdesk.web.session')")

    page.reload()
    expect(page.locator("#status")).to_have_text("Connected")
    expect(log.locator(".msg-customer .text")).to_have_text(["hello", "tax", "Do you charge sales tax?", hostile])
    expect(log.locator(".msg-bot")).to_have_count(4)
    expect(log.locator(".msg-bot").nth(1)).to_contain_text("Which one fits?")
    assert page.evaluate("localStorage.getItem('frontdesk.web.session')") == session
    assert log.locator("img, b").count() == 0 and page.evaluate("window.pwned") is None


def test_staff_messages_appear_live_without_a_reload(page, base_url):
    from playwright.sync_api import expect

    open_chat(page, base_url)
    log = page.get_by_role("log")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page
    say(page, "/human")
    expect(log.locator(".msg-bot").last).to_contain_text("asked a colleague")
    session = page.evaluate("localStorage.getItem('frontdesk.web.session')")
    queue = httpx.get(f"{base_url}/admin/escalations", headers=AUTH).json()
    escalation = next(r["id"] for r in queue if r["channel"] == "web" and r["user_id"] == session)

    sent = httpx.post(f"{base_url}/admin/escalations/{escalation}/reply", headers=AUTH,
                      json={"agent": "Sam", "text": "Hi, Sam here. <script>window.pwned=1</script>"})
    assert sent.status_code == 200, sent.text
    expect(log.locator(".msg-system").last).to_contain_text("Sam from our support team has joined")
    agent = log.locator(".msg-agent").last
    expect(agent.locator(".who")).to_have_text("Sam · support team")
    expect(agent.locator(".text")).to_have_text("Hi, Sam here. <script>window.pwned=1</script>")

    say(page, "thanks Sam, my parcel is late")  # staff hold the conversation: handled, no bot reply
    expect(log.locator(".msg-customer .text").last).to_have_text("thanks Sam, my parcel is late")
    expect(log.locator(".msg-customer.pending")).to_have_count(0)  # the server acknowledged it
    resolved = httpx.post(f"{base_url}/admin/escalations/{escalation}/resolve", headers=AUTH, json={"agent": "Sam"})
    assert resolved.status_code == 200, resolved.text
    expect(log.locator(".msg-bot").last).to_contain_text("Sam has handed you back to me")
    assert log.locator(".msg-bot").count() == 2  # the "asked a colleague" reply and the hand-back
    assert page.evaluate("window.sameDocument") is True and page.evaluate("window.pwned") is None

    page.reload()  # the internal notes ("claimed by Sam") stay out of the redrawn transcript
    expect(log.locator(".msg-agent .text")).to_have_text(["Hi, Sam here. <script>window.pwned=1</script>"])
    expect(log.locator(".msg-system")).to_have_count(1)


def test_bad_frames_get_an_error_frame_and_the_socket_stays_usable(base_url):
    from websockets.sync.client import connect

    ws_url = base_url.replace("http://", "ws://") + "/web/ws"
    with connect(f"{ws_url}?session=short") as bad:
        assert "session" in json.loads(bad.recv(timeout=10))["detail"]
        with pytest.raises(Exception, match="1008"):
            bad.recv(timeout=10)

    session = uuid.uuid4().hex
    with connect(f"{ws_url}?session={session}") as ws:
        assert json.loads(ws.recv(timeout=10)) == {"type": "history", "events": [], "id": None}
        for frame, complaint in [("not json", "JSON"), (json.dumps({"type": "typing"}), "expected"),
                                 (json.dumps({"type": "message", "text": "   "}), "non-empty"),
                                 (json.dumps({"type": "message", "text": "a" * 5001}), "too long"),
                                 (json.dumps({"type": "message", "text": "hi", "id": "no spaces"}), '"id"'),
                                 (b"\x00binary", "binary"), ("x" * 40_000, "too large")]:
            ws.send(frame)
            answer = json.loads(ws.recv(timeout=10))
            assert answer["type"] == "error" and complaint in answer["detail"], (frame[:20], answer)

        ws.send(json.dumps({"type": "message", "text": "hello", "id": "m-1"}))
        reply = json.loads(ws.recv(timeout=30))
        assert reply["type"] == "reply" and reply["in_reply_to"] == "m-1" and "Larkspur" in reply["text"]
        assert json.loads(ws.recv(timeout=10)) == {"type": "ack", "id": "m-1"}
        ws.send(json.dumps({"type": "message", "text": "hello", "id": "m-1"}))  # a resend after a lost answer
        redraw = json.loads(ws.recv(timeout=30))
        assert redraw["type"] == "history" and redraw["id"] == "m-1"
        assert [e["role"] for e in redraw["events"]] == ["customer", "bot"]
        assert json.loads(ws.recv(timeout=10)) == {"type": "ack", "id": "m-1"}


def test_open_pages_share_one_redis_subscriber_and_live_replies_reach_only_their_page(base_url, redis_server):
    import time

    import redis
    from websockets.sync.client import connect

    client = redis.Redis(unix_socket_path=redis_server.socket_file, decode_responses=True)

    def subscribers() -> set[str]:
        return {c["id"] for c in client.client_list(_type="pubsub")}

    def listeners(session: str) -> int:
        [channel] = client.pubsub_channels(f"*:outbox:web:{session}") or [f"none:{session}"]
        return dict(client.pubsub_numsub(channel)).get(channel, 0)

    before = subscribers()
    ws_url = base_url.replace("http://", "ws://") + "/web/ws"
    sessions = [uuid.uuid4().hex for _ in range(6)]
    with contextlib.ExitStack() as pages:
        sockets = [pages.enter_context(connect(f"{ws_url}?session={s}")) for s in sessions]
        for ws in sockets:
            assert json.loads(ws.recv(timeout=10))["type"] == "history"  # sent after the page is watched
        assert [listeners(s) for s in sessions] == [1] * 6
        assert len(subscribers() - before) <= 1  # one listener for the process, not one per page

        target = sockets[2]
        target.send(json.dumps({"type": "message", "text": "/human", "id": "h-1"}))
        while json.loads(target.recv(timeout=30))["type"] != "ack":
            pass
        queue = httpx.get(f"{base_url}/admin/escalations", headers=AUTH).json()
        escalation = next(r["id"] for r in queue if r["channel"] == "web" and r["user_id"] == sessions[2])
        claimed = httpx.post(f"{base_url}/admin/escalations/{escalation}/claim", headers=AUTH, json={"agent": "Sam"})
        assert claimed.status_code == 200, claimed.text
        sent = httpx.post(f"{base_url}/admin/escalations/{escalation}/reply", headers=AUTH,
                          json={"agent": "Sam", "text": "Sam here, live"})
        assert sent.status_code == 200, sent.text
        pushed = [json.loads(target.recv(timeout=10)) for _ in range(2)]  # "Sam has joined", then the reply
        assert pushed[-1]["text"] == "Sam here, live" and pushed[-1]["in_reply_to"] is None
        for other in sockets[:2] + sockets[3:]:
            with pytest.raises(TimeoutError):
                other.recv(timeout=0.2)
    deadline = time.monotonic() + 10
    while any(listeners(s) for s in sessions):  # closed pages are unsubscribed
        assert time.monotonic() < deadline, [listeners(s) for s in sessions]
        time.sleep(0.1)
