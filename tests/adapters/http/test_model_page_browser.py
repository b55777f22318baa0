"""The Model page (`/console/model`) in a real browser against the real app: the serving model shown, a shadow
started from the form, its figures rising as customers write, a promote refused with the server's reason, the
shadow stopped; and an agent's token refused in plain words."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
import yaml

from adapters.runtime.settings import Settings
from tests.support.liveserver import live_app
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

pytestmark = pytest.mark.browser  # Debian's chromium through Playwright

TOKEN = "model-page-token-0123456789abcdef01234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = f"model-page-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def base_url(tiny_model, redis_server, tmp_path_factory):
    kb = tmp_path_factory.mktemp("model-page-kb") / "faq.yaml"
    kb.write_text(yaml.safe_dump([{"id": "hours", "question": "When are you open?", "answer": "9 to 5.",
                                   "alternates": ["opening hours", "what time do you close"]}]))
    # Every message goes to the review inbox (confidence below 1.0), so one can be labelled for the promote check.
    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=PREFIX, FRONTDESK_ADMIN_TOKEN=TOKEN, FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu", FRONTDESK_KB=kb,
                        FRONTDESK_REVIEW_CONFIDENCE=1.0, FRONTDESK_IP_RATE_LIMIT="0/60")
    with live_app(settings) as url:
        yield url


@pytest.fixture()
def errors(page) -> list[str]:
    """Script errors and console errors (a Content-Security-Policy violation is one): none expected."""
    found: list[str] = []
    page.on("pageerror", lambda error: found.append(str(error)))
    page.on("console", lambda message: found.append(message.text) if message.type == "error" else None)
    return found


def chat(base_url: str, sender: str, text: str) -> None:
    response = httpx.post(f"{base_url}/chat", json={"sender": sender, "message": text}, headers=CHAT_AUTH, timeout=60)
    assert response.status_code == 200, response.text


def test_an_admin_shadows_a_model_sees_its_figures_and_stops_it(page, errors, base_url, tiny_model, demo_model,
                                                               tmp_path):
    from playwright.sync_api import expect

    from nlu.versions import model_version

    serving, candidate = model_version(tiny_model), model_version(demo_model)
    loaded = page.goto(f"{base_url}/console/model")
    assert loaded.ok and "script-src 'self'" in loaded.headers["content-security-policy"]
    page.fill("#signin-token", "wrong")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_have_text("wrong token")
    page.fill("#signin-token", TOKEN)
    page.click("#signin-submit")

    expect(page.locator("#serving-version")).to_have_text(serving)
    expect(page.locator("#serving-previous")).to_have_text("none")
    expect(page.locator("#worker-rows tr")).to_have_count(1)
    expect(page.locator("#worker-rows td").nth(1)).to_have_text(serving)
    expect(page.locator("#shadow-none")).to_be_visible()
    expect(page.locator("#shadow-stop")).to_be_disabled()
    expect(page.locator("#shadow-promote")).to_be_disabled()

    # Not a model: the server's 422 names the problem, shown as text (the path's markup stays text).
    page.fill("#shadow-path", str(tmp_path / "<b>nowhere</b>"))
    page.click("#shadow-start")
    expect(page.locator("#message")).to_contain_text("Not started: path:")
    expect(page.locator("#message")).to_contain_text("<b>nowhere</b>")
    expect(page.locator("#message b")).to_have_count(0)
    expect(page.locator("#shadow-none")).to_be_visible()

    page.fill("#shadow-path", str(demo_model))
    page.click("#shadow-start")
    expect(page.locator("#message")).to_have_text(f"Shadow {candidate} started.")
    expect(page.locator("#shadow")).to_be_visible()
    expect(page.locator("#shadow-version")).to_have_text(candidate)
    expect(page.locator("#shadow-compared")).to_have_text("0")

    for i, text in enumerate(["where is my order", "hello", "i want my money back", "tell me a joke"]):
        chat(base_url, f"m{i}", text)
    # The shadow compares off the reply path and its worker reports every heartbeat; the page polls every 3 s.
    expect(page.locator("#shadow-compared")).to_have_text(re.compile(r"^[1-9]\d*$"), timeout=45_000)
    expect(page.locator("#shadow-agreement")).to_have_text(re.compile(r"^\d+\.\d %$"))
    expect(page.locator("#change-rows tr")).to_have_count(6)
    expect(page.locator('#change-rows tr[data-change="answer_to_decline"] td').first).to_have_text(
        "Answered now, would not be")
    latency = page.locator("#latency-rows tr")
    expect(latency).to_have_count(1)
    expect(latency.locator("td").nth(1)).to_have_text(re.compile(r"^\d+(\.\d+)?$"))  # serving p50, in ms
    expect(page.locator("#shadow-worker-rows td").nth(1)).to_have_text("yes")
    shown = int(page.locator("#shadow-compared").text_content())
    status = httpx.get(f"{base_url}/admin/model/shadow", headers=AUTH, timeout=10).json()
    assert status["active"] and status["compared"] >= shown

    # Promote: asked first, and a dismissed dialog changes nothing.
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#shadow-promote")
    expect(page.locator("#message")).to_have_text("Not promoted.")
    assert asked == [f"Promote {candidate} to serving on every worker?"]

    # A labelled review item the serving model gets right and the candidate cannot (it has no `refund` intent):
    # the deploy is refused with 409 and {"reason": ...}, which the page shows.
    item = next(i for i in httpx.get(f"{base_url}/admin/review", headers=AUTH, timeout=10).json()
                if i["text"] == "i want my money back")
    assert item["intent"] == "refund"  # the serving model's own answer on a text it was trained on
    assert httpx.post(f"{base_url}/admin/review/{item['id']}", json={"intent": "refund"}, headers=AUTH,
                      timeout=10).status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#shadow-promote")
    expect(page.locator("#message")).to_contain_text("Not promoted: the candidate is worse on the 1 labelled",
                                                     timeout=60_000)
    expect(page.locator("#serving-version")).to_have_text(serving)

    page.click("#shadow-stop")
    expect(page.locator("#message")).to_have_text(re.compile(r"^Shadow stopped after [1-9]\d* compared message"))
    expect(page.locator("#shadow-none")).to_be_visible()
    expect(page.locator("#shadow")).to_be_hidden()
    expect(page.locator("#shadow-promote")).to_be_disabled()
    assert httpx.get(f"{base_url}/admin/model/shadow", headers=AUTH, timeout=10).json() == {"active": False}

    # The console links here.
    assert [e for e in errors if "status of 4" not in e] == []  # the refusals above log "failed to load: 4xx"
    page.goto(f"{base_url}/console")
    assert page.locator("#model-link").get_attribute("href") == "/console/model"


def test_an_agent_is_told_the_page_is_for_admins(page, errors, base_url, redis_server):
    from playwright.sync_api import expect

    from bot.keys import Keys
    from bot.staff import StaffDirectory

    _, token = StaffDirectory(redis_server, Keys(PREFIX)).add(f"kim{uuid.uuid4().hex[:4]}", "agent")
    # Signed in to the console, the agent follows its link: the page says why it shows nothing.
    page.goto(f"{base_url}/console")
    page.fill("#signin-token", token)
    page.fill("#signin-agent", "Kim")
    page.click("#signin-submit")
    expect(page.locator("#console")).to_be_visible()
    page.click("#model-link")
    expect(page.locator("#refused")).to_be_visible()
    expect(page.locator("#refused-text")).to_contain_text("This page is for admins: /admin/model is for admins")
    expect(page.locator("#panels")).to_be_hidden()

    # Typed into the page's own sign-in, the same token is refused there.
    page.click("#refused-signin")
    page.fill("#signin-token", token)
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_contain_text("This page is for admins")
    expect(page.locator("#model")).to_be_hidden()
    assert [e for e in errors if "status of 4" not in e] == []
