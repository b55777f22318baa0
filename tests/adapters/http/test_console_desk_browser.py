"""The console's desk features in a real browser (Debian's chromium) against the real app on a real server:
who is signed in, the new-escalation alert, saved replies, and the 30-day charts."""

from __future__ import annotations

import uuid

import httpx
import pytest

from adapters.runtime.settings import Settings
from tests.support.liveserver import live_app
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

pytestmark = pytest.mark.browser  # Debian's chromium through Playwright

TOKEN = "desk-browser-token-0123456789abcdef012"
PREFIX = f"desk-browser-{uuid.uuid4().hex[:8]}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def base_url(demo_model, redis_server, tmp_path_factory):
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=PREFIX, FRONTDESK_ADMIN_TOKEN=TOKEN, FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu")
    with live_app(settings) as url:
        yield url


def sign_in(page, base_url: str, token: str = TOKEN) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/console")
    page.fill("#signin-token", token)
    page.fill("#signin-agent", "Sam")
    page.click("#signin-submit")
    expect(page.locator("#console")).to_be_visible()


def chat(base_url: str, sender: str, text: str, name: str | None = None) -> list[dict]:
    response = httpx.post(f"{base_url}/chat", json={"sender": sender, "message": text, "name": name},
                          headers=CHAT_AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["replies"]


def test_sign_in_shows_who_and_a_new_escalation_raises_the_alert(page, base_url):
    from playwright.sync_api import expect

    sign_in(page, base_url)
    me = httpx.get(f"{base_url}/admin/me", headers=AUTH, timeout=10)
    if me.status_code == 200:  # staff accounts (CONTRACT "Staff"): the token's own name and role
        expect(page.locator("#me")).to_have_text(f"token: {me.json()['name']} ({me.json()['role']})")
    expect(page.locator("#queue-empty")).to_be_visible()  # the first poll is in: nothing waiting
    expect(page.locator("#alert")).to_be_hidden()
    assert page.title() == "Frontdesk staff console"

    sender = f"cust-{uuid.uuid4().hex[:6]}"
    assert "colleague" in chat(base_url, sender, "/human", name="Ada Lovelace")[0]["text"]
    expect(page.locator("#alert")).to_be_visible()
    expect(page.locator("#alert-text")).to_have_text("New escalation from Ada Lovelace on rest")
    expect(page).to_have_title("(1) Frontdesk staff console")
    expect(page.locator("#queue .who").first).to_contain_text(f"Ada Lovelace ({sender})")
    assert page.locator("#alert-sound").is_checked()
    expect(page.locator("#alert-sound")).to_have_attribute("data-played", "1")  # one chime (WebAudio)

    # Sound off is remembered across a reload (localStorage); the badge follows the waiting count.
    page.uncheck("#alert-sound")
    page.reload()
    expect(page.locator("#console")).to_be_visible()
    assert not page.locator("#alert-sound").is_checked()
    expect(page).to_have_title("(1) Frontdesk staff console")
    expect(page.locator("#alert")).to_be_hidden()  # a fresh page: what is waiting already is not news
    chat(base_url, f"cust-{uuid.uuid4().hex[:6]}", "/human")
    expect(page.locator("#alert")).to_be_visible()
    expect(page).to_have_title("(2) Frontdesk staff console")
    assert page.locator("#alert-sound").get_attribute("data-played") is None  # muted: no chime


def test_saved_replies_are_shared_and_insert_with_one_click(page, base_url):
    from playwright.sync_api import expect

    sender = f"cust-{uuid.uuid4().hex[:6]}"
    chat(base_url, sender, "/human")
    sign_in(page, base_url)
    page.locator("#queue button", has_text=sender).click()  # saved replies sit under the reply box
    expect(page.locator("#detail")).to_be_visible()
    page.fill("#saved-title", "Refund window")
    page.fill("#saved-text", "You can return any item within 30 days for a full refund.")
    page.click("#saved-add")
    expect(page.locator("#saved-list .saved-insert", has_text="Refund window")).to_be_visible()
    saved = httpx.get(f"{base_url}/admin/saved-replies", headers=AUTH, timeout=10).json()
    assert [(r["title"], r["by"]) for r in saved] == [("Refund window", "admin")]

    page.click("#saved-list .saved-insert")
    expect(page.locator("#reply-text")).to_have_value("You can return any item within 30 days for a full refund.")

    page.click("#saved-list .saved-delete")
    expect(page.locator("#saved-list .saved-insert")).to_have_count(0)
    assert httpx.get(f"{base_url}/admin/saved-replies", headers=AUTH, timeout=10).json() == []
    bad = httpx.post(f"{base_url}/admin/saved-replies", headers=AUTH, json={"title": "", "text": "x"}, timeout=10)
    assert bad.status_code == 422


def test_charts_draw_a_point_per_day_from_the_daily_numbers(page, base_url):
    from playwright.sync_api import expect

    chat(base_url, f"cust-{uuid.uuid4().hex[:6]}", "hello")
    daily = httpx.get(f"{base_url}/admin/stats/daily?days=30", headers=AUTH, timeout=10).json()["days"]
    assert len(daily) == 30 and daily[-1]["messages"] >= 1
    sign_in(page, base_url)
    points = page.locator("#chart-messages circle.point")
    expect(points).to_have_count(30)  # one a day, zeros included
    assert points.last.get_attribute("data-value") == str(daily[-1]["messages"])
    assert points.last.get_attribute("data-day") == daily[-1]["day"]
    # Rates exist only on days with conversations: this Redis prefix has today's alone.
    expect(page.locator("#chart-containment circle.point")).to_have_count(1)
    expect(page.locator("#chart-escalation circle.point")).to_have_count(1)
    expect(page.locator("#chart-messages-latest")).to_have_text(str(daily[-1]["messages"]))


def test_an_agent_signs_in_sees_their_account_and_uses_the_desk(page, base_url, redis_server):
    """An agent's token (staff accounts): the console names the account, and saved replies and charts are theirs
    to use (agents may use the console; /admin routes outside it answer 403)."""
    from playwright.sync_api import expect

    from bot.keys import Keys
    from bot.staff import StaffDirectory

    _, token = StaffDirectory(redis_server, Keys(PREFIX)).add(f"kim{uuid.uuid4().hex[:4]}", "agent")
    agent = {"Authorization": f"Bearer {token}"}
    name = httpx.get(f"{base_url}/admin/me", headers=agent, timeout=10).json()["name"]
    sign_in(page, base_url, token)
    expect(page.locator("#me")).to_have_text(f"token: {name} (agent)")
    expect(page.locator("#chart-messages circle.point")).to_have_count(30)
    added = httpx.post(f"{base_url}/admin/saved-replies", headers=agent, timeout=10,
                       json={"title": "Hello", "text": "Hi, how can I help?"})
    assert added.status_code == 201 and added.json()["by"] == name
    assert httpx.delete(f"{base_url}/admin/saved-replies/{added.json()['id']}", headers=agent,
                        timeout=10).status_code == 200
    assert httpx.post(f"{base_url}/admin/faq/reload", headers=agent, timeout=10).status_code == 403
