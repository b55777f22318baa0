"""The Review page (`/console/review`) in a real browser against the real app: items listed, one labelled by
clicking, the label stored."""

from __future__ import annotations

import uuid

import httpx
import pytest
import yaml

from adapters.runtime.settings import Settings
from tests.support.liveserver import live_app
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

pytestmark = pytest.mark.browser  # Debian's chromium through Playwright

TOKEN = "review-page-token-0123456789abcdef0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def base_url(tiny_model, redis_server, tmp_path_factory):
    kb = tmp_path_factory.mktemp("review-kb") / "faq.yaml"
    kb.write_text(yaml.safe_dump([{"id": "hours", "question": "When are you open?", "answer": "9 to 5.",
                                   "alternates": ["opening hours", "what time do you close"]}]))
    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"review-{uuid.uuid4().hex[:8]}", FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu", FRONTDESK_KB=kb,
                        FRONTDESK_REVIEW_CONFIDENCE=1.0, FRONTDESK_IP_RATE_LIMIT="0/60")
    with live_app(settings) as url:
        yield url


def test_items_are_listed_and_one_is_labelled_by_clicking(page, base_url):
    from playwright.sync_api import expect

    texts = ["cancel my subscription <b>now</b>", "mail me at someone@example.org about my plan"]
    for i, text in enumerate(texts):
        assert httpx.post(f"{base_url}/chat", json={"sender": f"c{i}", "message": text}, headers=CHAT_AUTH,
                          timeout=60).status_code == 200
    items = httpx.get(f"{base_url}/admin/review", headers=AUTH, timeout=30).json()
    assert len(items) == 2

    loaded = page.goto(f"{base_url}/console/review")
    assert loaded.ok and "script-src 'self'" in loaded.headers["content-security-policy"]
    page.fill("#signin-token", "wrong")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_have_text("wrong token")
    page.fill("#signin-token", TOKEN)
    page.click("#signin-submit")

    rows = page.locator("#item-rows tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#item-rows td.text").first).to_contain_text("[email]")  # masked, shown as text
    expect(page.locator("#item-rows b")).to_have_count(0)  # customer text never becomes markup
    target = next(i for i in items if i["text"].startswith("cancel"))
    row = page.locator(f'#item-rows tr[data-id="{target["id"]}"]')
    expect(row.locator("td.text")).to_contain_text("cancel my subscription <b>now</b>")
    row.locator('input[name="intent"]').fill("cancel")
    row.locator("button.label-intent").click()
    expect(page.locator("#message")).to_have_text("Labelled 1 message.")
    expect(rows).to_have_count(1)  # "to review" now lists only the other one

    stored = httpx.get(f"{base_url}/admin/review", headers=AUTH, timeout=30).json()
    labelled = next(i for i in stored if i["id"] == target["id"])
    assert labelled["status"] == "labelled" and labelled["label_intent"] == "cancel"
    assert httpx.get(f"{base_url}/admin/review/export", headers=AUTH).text.splitlines()[1:] == [
        "cancel my subscription <b>now</b>,cancel"]

    page.select_option("#status-filter", "")
    expect(rows).to_have_count(2)
    expect(row.locator(".labelled")).to_have_text("intent: cancel")

    # The console links here.
    page.goto(f"{base_url}/console")
    assert page.locator("#review-link").get_attribute("href") == "/console/review"
