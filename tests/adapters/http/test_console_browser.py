"""The staff console at `/console`, in a real browser (Debian's chromium through Playwright) against the real app.

The app runs in a real uvicorn server on 127.0.0.1 with the demo model, a copy of the demo
FAQ (so a test can break it) and a real Redis. Customers talk through `POST /chat`; staff
act only through the page, and the admin API is used to check what the page did.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from adapters.runtime.settings import Settings
from tests.support.liveserver import live_app
from tests.support.paths import REPO_ROOT
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

pytestmark = pytest.mark.browser  # Debian's chromium through Playwright

TOKEN = "console-test-token-0123456789abcdef012"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEMO_KB = REPO_ROOT / "knowledge" / "demo"


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory) -> Path:
    kb = tmp_path_factory.mktemp("kb") / "demo"
    shutil.copytree(DEMO_KB, kb)
    return kb


@pytest.fixture(scope="module")
def base_url(demo_model, redis_server, kb_dir, tmp_path_factory):
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"console-{uuid.uuid4().hex[:8]}", FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu", FRONTDESK_KB=kb_dir)
    with live_app(settings) as url:
        yield url


def sign_in(page, token: str = TOKEN, agent: str = "Sam") -> None:
    page.fill("#signin-token", token)
    page.fill("#signin-agent", agent)
    page.click("#signin-submit")


def chat(base_url: str, sender: str, text: str) -> list[dict]:
    response = httpx.post(f"{base_url}/chat", json={"sender": sender, "message": text}, headers=CHAT_AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["replies"]


def admin_get(base_url: str, path: str):
    response = httpx.get(f"{base_url}{path}", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_staff_sign_in_claim_reply_and_resolve_an_escalation(page, base_url):
    from playwright.sync_api import expect

    loaded = page.goto(f"{base_url}/console")
    assert loaded.ok and "script-src 'self'" in loaded.headers["content-security-policy"]

    sign_in(page, token="not-the-token")
    expect(page.locator("#signin-error")).to_have_text("wrong token")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0

    sign_in(page)
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("#agent-name")).to_have_text("Sam")
    expect(page.locator("#queue-empty")).to_be_visible()

    # A customer asks for a person while the console is open: the queue's polling shows it.
    sender = f"cust-{uuid.uuid4().hex[:6]}"
    assert chat(base_url, sender, "hello <b>there</b>")
    assert "colleague" in chat(base_url, sender, "/human")[0]["text"]
    (record,) = [r for r in admin_get(base_url, "/admin/escalations") if r["user_id"] == sender]
    item = page.locator(f'#queue button[data-id="{record["id"]}"]')
    expect(item).to_contain_text("Asked for a person")
    expect(item).to_contain_text("open")

    item.click()
    expect(page.locator("#detail-status")).to_have_text("open")
    customer = page.locator("#transcript li.role-customer")
    expect(customer.first).to_contain_text("hello <b>there</b>")  # shown as text, never as markup
    assert page.locator("#transcript b").count() == 0
    expect(page.locator("#transcript li.role-bot").first).to_be_visible()
    expect(page.locator("#transcript li.role-system", has_text="escalated: asked_for_human")).to_be_visible()

    page.click("#claim")
    expect(page.locator("#detail-status")).to_have_text("claimed")
    expect(page.locator("#claim")).to_be_disabled()
    claimed = admin_get(base_url, f"/admin/escalations/{record['id']}")
    assert (claimed["status"], claimed["agent"]) == ("claimed", "Sam")

    # The customer writes while staff hold the conversation: nothing from the bot, the console shows it.
    assert chat(base_url, sender, "are you there?") == []
    expect(customer.last).to_contain_text("are you there?")

    page.fill("#reply-text", "Hi, Sam here. How can I help?")
    page.click("#reply-send")
    expect(page.locator("#transcript li.role-agent")).to_contain_text("Agent Sam")
    expect(page.locator("#transcript li.role-agent")).to_contain_text("Hi, Sam here. How can I help?")
    expect(page.locator("#reply-text")).to_have_value("")
    transcript = admin_get(base_url, f"/admin/escalations/{record['id']}")["transcript"]
    assert [(e["text"], e.get("by")) for e in transcript if e["role"] == "agent"] == [
        ("Hi, Sam here. How can I help?", "Sam")]

    page.click("#resolve")
    expect(page.locator("#detail-status")).to_have_text("resolved")
    expect(page.locator("#reply-send")).to_be_disabled()
    expect(item).to_have_count(0)  # the queue shows waiting and claimed ones by default
    assert admin_get(base_url, f"/admin/escalations/{record['id']}")["status"] == "resolved"
    replies = chat(base_url, sender, "hello again")
    assert replies and replies[0]["sender"] == "bot"  # the bot answers again

    # The numbers panel shows the bot's statistics as the admin route reports them.
    summary = admin_get(base_url, "/admin/stats")
    assert summary["messages_today"] >= 4 and summary["escalated_conversations"] >= 1
    expect(page.locator("#stats-messages")).to_have_text(str(summary["messages_today"]))
    expect(page.locator("#stats-escalation")).not_to_have_text("–")
    expect(page.locator("#stats-intents li").first).to_contain_text("×")
    assert httpx.get(f"{base_url}/admin/stats", timeout=10).status_code == 401
    assert httpx.get(f"{base_url}/admin/stats?days=0", headers=AUTH, timeout=10).status_code == 422


def test_faq_panel_shows_the_version_and_a_rejected_reload(page, base_url, kb_dir):
    from playwright.sync_api import expect

    version = admin_get(base_url, "/admin/faq")["version"]
    page.goto(f"{base_url}/console")
    sign_in(page)
    expect(page.locator("#faq-version")).to_have_text(version["version"])
    expect(page.locator("#faq-entries")).to_have_text(str(version["entries"]))

    broken = kb_dir / "broken.yaml"
    broken.write_text("- id: broken-entry\n  question: ''\n")
    try:
        page.click("#faq-reload")
        errors = page.locator("#faq-errors li")
        expect(errors.first).to_be_visible()
        texts = errors.all_text_contents()
        assert all("broken.yaml:1:" in t for t in texts), texts
        assert any("missing answer" in t for t in texts) and any("question" in t for t in texts), texts
        expect(page.locator("#faq-message")).to_contain_text(f"still serving {version['version']}")
        expect(page.locator("#faq-version")).to_have_text(version["version"])
        assert admin_get(base_url, "/admin/faq")["version"]["version"] == version["version"]
    finally:
        broken.unlink()

    page.click("#faq-reload")  # fixed: accepted, and the old error list goes away
    expect(page.locator("#faq-message")).to_contain_text(f"still version {version['version']}")
    expect(page.locator("#faq-errors li")).to_have_count(0)

    # A token that stops working (say, rotated on the server) sends the page back to the sign-in.
    page.evaluate("sessionStorage.setItem('frontdesk.console.token', 'rotated-away')")
    page.reload()
    expect(page.locator("#signin-error")).to_have_text("wrong token")
    expect(page.locator("#console")).to_be_hidden()
