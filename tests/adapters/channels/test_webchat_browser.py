"""The web chat at `/`, in a real browser (Debian's chromium through Playwright) against the real app.

The app runs in a real uvicorn server on 127.0.0.1 with the demo model, the demo FAQ and
a real Redis; the page talks to it over its WebSocket exactly as in production.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid

import httpx
import pytest
import yaml

from adapters.channels.web import session_hash
from adapters.runtime.settings import Settings
from tests.support.liveserver import live_app
from tests.support.paths import REPO_ROOT
from tests.support.webchat import chat_socket

pytestmark = pytest.mark.browser  # Debian's chromium through Playwright

DEMO_KB = REPO_ROOT / "knowledge" / "demo"
# Two pairs of entries that share every alternate: a question near them matches both about equally, so the
# bot offers both as buttons whatever the calibrated bars (the answer rule never picks between near-ties).
TWINS = [
    {"id": f"{slug}{suffix.replace(' ', '-')}-sizes", "question": f"What sizes does the {name}{suffix} come in?",
     "answer": f"The {name}{suffix} comes in small, medium and large ({slug}{suffix} sizes).",
     "alternates": [f"{name} sizes", f"does the {name} come in large", f"is there a small {name}",
                    f"{name} size options", f"how big is the {name}"]}
    for slug, name in (("linen-duvet", "linen duvet"), ("wool-rug", "wool rug")) for suffix in ("", " cover")
]
KB_DIR = DEMO_KB  # replaced by the module's copy with the twins (see `base_url`)
TOKEN = "webchat-test-token-0123456789abcdef012"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def base_url(demo_model, redis_server, tmp_path_factory):
    global KB_DIR
    KB_DIR = tmp_path_factory.mktemp("kb")
    shutil.copytree(DEMO_KB, KB_DIR, dirs_exist_ok=True)  # FAQ files, dev questions and articles/
    (KB_DIR / "twins.yaml").write_text(yaml.safe_dump(TWINS), encoding="utf-8")
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"webchat-{uuid.uuid4().hex[:8]}", FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu",
                        FRONTDESK_KB=KB_DIR)
    with live_app(settings) as url:
        yield url


def open_chat(page, base_url: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/")
    expect(page.locator("#status")).to_have_text("Connected")


def say(page, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_label("Your message").press("Enter")


def faq_answer(question: str) -> str:
    """The demo FAQ's answer to `question`, read from the file so a reworded answer does not break the test."""
    entries = [e for name in ("faq.yaml", "twins.yaml")
               for e in yaml.safe_load((KB_DIR / name).read_text(encoding="utf-8"))]
    return next(e["answer"] for e in entries if e["question"] == question)


# Topics the demo FAQ covers with several entries. Which of them are too vague for a single answer (so the bot
# offers the closest questions as buttons) moves as the FAQ and its matching change, so the tests ask the
# running server rather than hard-code one; what they then check is what the page does with the buttons.
TOPICS = ("which sizes are there for the linen duvet", "which sizes are there for the wool rug",
          "returns", "discount", "warranty", "tax", "refund", "exchange", "payment", "account", "delivery", "gift")


@pytest.fixture(scope="module")
def vague(base_url) -> list[tuple[str, list[str]]]:
    """Two (topic, offered questions) whose first message gets one bot reply with buttons; the first has 2+."""
    ws_url = base_url.replace("http://", "ws://") + "/web/ws"
    found = []
    for topic in TOPICS:
        with chat_socket(ws_url, uuid.uuid4().hex) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "history"
            ws.send(json.dumps({"type": "message", "text": topic, "id": "probe"}))
            replies = []
            while (frame := json.loads(ws.recv(timeout=60)))["type"] == "reply":
                replies.append(frame)
        if len(replies) == 1 and replies[0]["suggestions"]:
            found.append((topic, replies[0]["suggestions"]))
        several = [f for f in found if len(f[1]) >= 2]
        if several and len(found) >= 2:
            return [several[0], next(f for f in found if f is not several[0])]
    pytest.fail(f"too few of {TOPICS} get FAQ questions as buttons from the demo FAQ: {found}")


def test_chat_reply_suggestion_click_and_reload_keeps_the_conversation(page, base_url, vague):
    from playwright.sync_api import expect

    topic, offered = vague[0]
    open_chat(page, base_url)
    log = page.get_by_role("log")
    say(page, "hello")
    expect(log.locator(".msg-bot").last).to_contain_text("Larkspur Home assistant")
    expect(log.locator(".msg-customer .text")).to_have_text(["hello"])

    say(page, topic)  # too vague for one FAQ answer: the bot offers the closest questions as buttons
    button = page.get_by_role("group", name="Suggested replies").get_by_role("button", name=offered[0], exact=True)
    expect(button).to_be_visible()
    button.click()
    expect(log.locator(".msg-customer").last).to_contain_text(offered[0])
    expect(log.locator(".msg-bot .text").last).to_have_text(faq_answer(offered[0]))
    expect(button).to_have_attribute("aria-pressed", "true")  # marked as chosen, still there

    hostile = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    say(page, hostile)  # shown as the characters typed, never as markup
    expect(log.locator(".msg-customer .text").last).to_have_text(hostile)
    expect(log.locator(".msg-bot")).to_have_count(4)
    expect(log.locator(".msg-customer.pending")).to_have_count(0)
    session = page.evaluate("localStorage.getItem('frontdesk.web.session')")

    page.reload()
    expect(page.locator("#status")).to_have_text("Connected")
    expect(log.locator(".msg-customer .text")).to_have_text(["hello", topic, offered[0], hostile])
    expect(log.locator(".msg-bot")).to_have_count(4)
    expect(log.locator(".msg-bot").nth(1)).to_contain_text("Which one fits?")
    assert page.evaluate("localStorage.getItem('frontdesk.web.session')") == session
    assert log.locator("img, b").count() == 0 and page.evaluate("window.pwned") is None


def test_suggestions_stay_under_their_own_message_and_an_earlier_one_can_still_be_picked(page, base_url, vague):
    from playwright.sync_api import expect

    (topic, offered), (other_topic, other_offered) = vague
    open_chat(page, base_url)
    log = page.get_by_role("log")
    messages, bots = log.locator(".msg"), log.locator(".msg-bot")
    say(page, topic)
    first_set = messages.nth(1).get_by_role("group", name="Suggested replies")
    expect(first_set.get_by_role("button")).to_have_text(offered)
    say(page, other_topic)  # a second set, which must not replace or move the first
    expect(messages.nth(3).get_by_role("button")).to_have_text(other_offered)
    say(page, "hello")  # a reply without suggestions
    expect(bots).to_have_count(3)
    expect(bots.nth(2)).to_contain_text("Larkspur Home assistant")
    expect(bots.nth(2).locator(".suggestions")).to_have_count(0)

    # Each set is inside its own bot message, below that message's text and above the next message.
    expect(log.get_by_role("group", name="Suggested replies")).to_have_count(2)
    expect(messages).to_have_class(["msg msg-customer", "msg msg-bot"] * 3)
    expect(first_set.get_by_role("button")).to_have_text(offered)
    for index in (1, 3):
        text_box = messages.nth(index).locator(".text").bounding_box()
        set_box = messages.nth(index).locator(".suggestions").bounding_box()
        next_box = messages.nth(index + 1).bounding_box()
        assert text_box["y"] + text_box["height"] <= set_box["y"] < set_box["y"] + set_box["height"] <= next_box["y"]

    choice = first_set.get_by_role("button", name=offered[1], exact=True)
    expect(choice).to_be_enabled()
    choice.click()  # an earlier set: Playwright scrolls back up to it, as a customer would
    expect(log.locator(".msg-customer .text")).to_have_text([topic, other_topic, "hello", offered[1]])
    expect(messages.last).to_have_class("msg msg-bot")
    expect(messages.last.locator(".text")).to_have_text(faq_answer(offered[1]))
    expect(log.locator(".msg-customer.pending")).to_have_count(0)
    # The chosen button is marked; both sets stay visible and usable.
    expect(choice).to_have_attribute("aria-pressed", "true")
    expect(first_set.get_by_role("button", name=offered[0], exact=True)).to_have_attribute("aria-pressed", "false")
    expect(first_set).to_be_visible()
    expect(log.get_by_role("group", name="Suggested replies")).to_have_count(2)
    expect(messages.nth(3).get_by_role("button").first).to_have_attribute("aria-pressed", "false")


def test_suggestions_are_redrawn_under_their_message_after_a_reload(page, base_url, vague):
    from playwright.sync_api import expect

    topic, offered = vague[0]
    open_chat(page, base_url)
    log = page.get_by_role("log")
    messages, bots = log.locator(".msg"), log.locator(".msg-bot")
    say(page, topic)
    messages.nth(1).get_by_role("button", name=offered[0], exact=True).click()
    expect(bots).to_have_count(2)
    say(page, "hello")
    expect(bots).to_have_count(3)
    expect(log.locator(".msg-customer.pending")).to_have_count(0)

    page.reload()
    expect(page.locator("#status")).to_have_text("Connected")
    expect(log.locator(".msg-customer .text")).to_have_text([topic, offered[0], "hello"])
    expect(messages).to_have_class(["msg msg-customer", "msg msg-bot"] * 3)
    redrawn = messages.nth(1).get_by_role("group", name="Suggested replies")
    expect(redrawn.get_by_role("button")).to_have_text(offered)
    expect(log.get_by_role("group", name="Suggested replies")).to_have_count(1)  # only under its own message
    # The transcript does not record clicks; the customer message repeating a button's text marks it again.
    expect(redrawn.get_by_role("button", name=offered[0], exact=True)).to_have_attribute("aria-pressed", "true")
    expect(redrawn.get_by_role("button", name=offered[1], exact=True)).to_have_attribute("aria-pressed", "false")

    redrawn.get_by_role("button", name=offered[1], exact=True).click()  # still works after the redraw
    expect(log.locator(".msg-customer .text").last).to_have_text(offered[1])
    expect(messages.last.locator(".text")).to_have_text(faq_answer(offered[1]))
    expect(messages.last).to_have_class("msg msg-bot")
    expect(redrawn.get_by_role("button", name=offered[1], exact=True)).to_have_attribute("aria-pressed", "true")


def test_staff_messages_appear_live_without_a_reload(page, base_url):
    from playwright.sync_api import expect

    open_chat(page, base_url)
    log = page.get_by_role("log")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page
    say(page, "/human")
    expect(log.locator(".msg-bot").last).to_contain_text("asked a colleague")
    session = page.evaluate("localStorage.getItem('frontdesk.web.session')")
    queue = httpx.get(f"{base_url}/admin/escalations", headers=AUTH).json()
    escalation = next(r["id"] for r in queue if r["channel"] == "web" and r["user_id"] == session_hash(session))

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
    expect(log.locator(".msg-bot").last).to_contain_text("How did we do?")  # bot.csat: the rating question
    expect(log.locator(".msg-bot").nth(1)).to_contain_text("Sam has handed you back to me")
    rate = log.locator(".msg-bot").last.get_by_role("button")
    expect(rate).to_have_text(["1", "2", "3", "4", "5"])
    assert log.locator(".msg-bot").count() == 3  # "asked a colleague", the hand-back, the rating question
    assert page.evaluate("window.sameDocument") is True and page.evaluate("window.pwned") is None

    page.reload()  # the internal notes ("claimed by Sam") stay out of the redrawn transcript
    expect(log.locator(".msg-agent .text")).to_have_text(["Hi, Sam here. <script>window.pwned=1</script>"])
    expect(log.locator(".msg-system")).to_have_count(1)
    log.locator(".msg-bot").last.get_by_role("button", name="4", exact=True).click()  # a rating, by button
    expect(log.locator(".msg-bot").last).to_contain_text("Thank you for your rating")
    record = next(r for r in httpx.get(f"{base_url}/admin/escalations", headers=AUTH).json() if r["id"] == escalation)
    assert record["rating"] == 4


def test_bad_frames_get_an_error_frame_and_the_socket_stays_usable(base_url):
    ws_url = base_url.replace("http://", "ws://") + "/web/ws"
    with chat_socket(ws_url, "short") as bad:
        assert "session" in json.loads(bad.recv(timeout=10))["detail"]
        with pytest.raises(Exception, match="1008"):
            bad.recv(timeout=10)

    session = uuid.uuid4().hex
    with chat_socket(ws_url, session) as ws:
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

    client = redis.Redis(unix_socket_path=redis_server.socket_file, decode_responses=True)

    def subscribers() -> set[str]:
        return {c["id"] for c in client.client_list(_type="pubsub")}

    def listeners(session: str) -> int:
        [channel] = client.pubsub_channels(f"*:conv:web:{session_hash(session)}}}:outbox") or [f"none:{session}"]
        return dict(client.pubsub_numsub(channel)).get(channel, 0)

    before = subscribers()
    ws_url = base_url.replace("http://", "ws://") + "/web/ws"
    sessions = [uuid.uuid4().hex for _ in range(6)]
    with contextlib.ExitStack() as pages:
        sockets = [pages.enter_context(chat_socket(ws_url, s)) for s in sessions]
        for ws in sockets:
            assert json.loads(ws.recv(timeout=10))["type"] == "history"  # sent after the page is watched
        assert [listeners(s) for s in sessions] == [1] * 6
        assert len(subscribers() - before) <= 1  # one listener for the process, not one per page

        target = sockets[2]
        target.send(json.dumps({"type": "message", "text": "/human", "id": "h-1"}))
        while json.loads(target.recv(timeout=30))["type"] != "ack":
            pass
        queue = httpx.get(f"{base_url}/admin/escalations", headers=AUTH).json()
        escalation = next(r["id"] for r in queue if r["channel"] == "web" and r["user_id"] == session_hash(sessions[2]))
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
