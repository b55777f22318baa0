"""The Gaps page (`/console/gaps`) in a real browser against the real app: customers ask the demo store about
things its knowledge base does not cover; the page lists those topics, opens one on its examples, drafts an
entry from it, shows the server's refusals (an agent's token, an id taken, a bad id), and an admin's approval
makes the bot answer the question and the topic drop out. The console beside it draws the resolution and
reopen rates and lists the week's top unanswered topics, each linking here."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from adapters.runtime.settings import Settings
from tests.support.liveserver import live_app
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

pytestmark = pytest.mark.browser  # Debian's chromium through Playwright

TOKEN = "gaps-page-token-0123456789abcdef0123456"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = f"gaps-page-{uuid.uuid4().hex[:8]}"
DEMO_KB = Path(__file__).resolve().parents[3] / "knowledge" / "demo"
# Two things the demo store's knowledge base does not cover (as in tests/system/test_gaps_loop.py).
DESIGN = ["do you offer interior design consultations", "book an interior design appointment",
          "do you have an interior design service", "can i get interior design advice from you"]
TRADE_IN = ["do you buy back old furniture", "can i trade in my old sofa", "furniture trade-in program?"]
ANSWER = "Yes: a free 45-minute interior design consultation by video. Book it at the store's front desk."


def chat(base_url: str, sender: str, text: str) -> list[dict]:
    response = httpx.post(f"{base_url}/chat", json={"sender": sender, "message": text}, headers=CHAT_AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["replies"]


def faq_source(base_url: str, sender: str, text: str) -> str | None:
    source = chat(base_url, sender, text)[-1].get("source")
    return source["id"] if source and source.get("kind") == "faq" else None


def topics(base_url: str) -> list[dict]:
    listed = httpx.get(f"{base_url}/admin/topics?days=7", headers=AUTH, timeout=120)
    assert listed.status_code == 200, listed.text
    return listed.json()


def topic_of(base_url: str, texts: list[str]) -> dict | None:
    return next((t for t in topics(base_url) if set(t["examples"]) & set(texts)), None)


@contextmanager
def kept_embeddings(home: Path) -> Iterator[None]:
    """With FRONTDESK_TEST_CACHE set (a developer's own runs, never CI), the knowledge base's embedding cache
    (content-addressed: model and text) is kept there between runs: the app then starts in seconds, not the
    minute and more that embedding the demo store's articles takes on two cores."""
    cache = os.environ.get("FRONTDESK_TEST_CACHE")
    kept = Path(cache) / "kb-cache-demo" if cache else None
    if kept is not None and kept.is_dir():
        shutil.copytree(kept, home / "kb-cache")
    yield
    if kept is not None and (home / "kb-cache" / "keys.json").is_file():
        kept.mkdir(parents=True, exist_ok=True)
        for name in ("vectors.npy", "keys.json"):  # each replaced whole; a mismatched pair only costs embedding
            shutil.copyfile(home / "kb-cache" / name, kept / f".{name}.tmp")
            os.replace(kept / f".{name}.tmp", kept / name)


@pytest.fixture(scope="module")
def served(demo_model, redis_server, tmp_path_factory):
    """(base URL, knowledge folder): the demo store on a copy of its knowledge folder (learned.yaml goes there),
    after customers asked it seven questions it cannot answer, on two topics."""
    kb = shutil.copytree(DEMO_KB, tmp_path_factory.mktemp("gaps-page") / "kb")
    home = tmp_path_factory.mktemp("home")
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=PREFIX, FRONTDESK_ADMIN_TOKEN=TOKEN, FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                        FRONTDESK_HOME=home, FRONTDESK_DEVICE="cpu", FRONTDESK_KB=kb,
                        FRONTDESK_IP_RATE_LIMIT="0/60", FRONTDESK_RATE_LIMIT="0/60")
    with kept_embeddings(home), live_app(settings) as url:
        for i, text in enumerate(DESIGN):
            assert faq_source(url, f"design-{i}", text) is None, text  # a gap: nothing answers it
        for i, text in enumerate(TRADE_IN):
            chat(url, f"trade-{i}", text)
        yield url, Path(kb)


@pytest.fixture()
def errors(page) -> list[str]:
    """Script errors and console errors (a Content-Security-Policy violation is one), less the browser's own
    "failed to load: 4xx" lines for the refusals the tests ask for."""
    found: list[str] = []
    page.on("pageerror", lambda error: found.append(str(error)))
    page.on("console", lambda message: found.append(message.text)
            if message.type == "error" and "status of 4" not in message.text else None)
    return found


def sign_in_console(page, base_url: str, token: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base_url}/console")
    page.fill("#signin-token", token)
    page.fill("#signin-agent", "Sam")
    page.click("#signin-submit")
    expect(page.locator("#console")).to_be_visible()


def test_an_agent_drafts_but_may_not_approve(page, errors, served, redis_server):
    from playwright.sync_api import expect

    from bot.keys import Keys
    from bot.staff import StaffDirectory

    base_url, kb = served
    trade = topic_of(base_url, TRADE_IN)
    assert trade is not None and trade["trend"] is None
    name = f"kim{uuid.uuid4().hex[:4]}"
    _, token = StaffDirectory(redis_server, Keys(PREFIX)).add(name, "agent")
    sign_in_console(page, base_url, token)  # the console's token carries over to its Gaps link
    page.click("#gaps-link")
    row = page.locator(f'#topic-rows tr[data-topic="{trade["id"]}"]')
    expect(row.locator("td.label")).to_have_text(trade["label"])
    expect(row.locator("td.trend")).to_have_text("new")
    row.locator("button.open-topic").click()
    expect(page.locator("#examples li")).to_have_count(len(trade["examples"]))
    page.click("#draft")
    expect(page.locator("#entry-form")).to_be_visible()
    assert page.input_value("#entry-question") in TRADE_IN
    page.fill("#entry-answer", "We do not buy furniture back.")
    page.click("#approve")
    expect(page.locator("#message")).to_have_text(
        f"Not approved: /admin/kb/entries is for admins; {name} is signed in as an agent")
    expect(page.locator("#approved")).to_be_hidden()
    expect(row).to_be_visible()  # still a gap
    assert not (kb / "learned.yaml").exists()
    assert errors == []


def test_an_admin_turns_a_topic_into_an_entry_the_bot_answers(page, errors, served):
    from playwright.sync_api import expect

    base_url, kb = served
    design = topic_of(base_url, DESIGN)
    assert design is not None and design["size"] == len(DESIGN), design
    loaded = page.goto(f"{base_url}/console/gaps")
    assert loaded.ok and "script-src 'self'" in loaded.headers["content-security-policy"]
    page.fill("#signin-token", "wrong")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_have_text("wrong token")
    page.fill("#signin-token", TOKEN)
    page.click("#signin-submit")

    # The list, as the API ranks it: label, size, reached staff, unhappy, trend ("new": nothing before), impact.
    row = page.locator(f'#topic-rows tr[data-topic="{design["id"]}"]')
    expect(row.locator("td")).to_have_text([design["label"], str(design["size"]), str(design["escalated"]),
                                            str(design["negative"]), "new", str(design["impact"])])
    listed = topics(base_url)
    expect(page.locator("#topic-rows tr")).to_have_count(len(listed))
    assert [tr.get_attribute("data-topic") for tr in page.locator("#topic-rows tr").all()] == [
        t["id"] for t in listed]

    # A topic opens on its (masked) examples; the draft fills the form.
    expect(page.locator("#topic")).to_be_hidden()
    row.locator("button.open-topic").click()
    expect(page.locator("#topic-title")).to_have_text(design["label"])
    expect(page.locator("#examples li")).to_have_text(design["examples"])
    assert set(design["examples"]) <= set(DESIGN)
    page.click("#draft")
    expect(page.locator("#entry-form")).to_be_visible()
    question = page.input_value("#entry-question")
    alternates = page.input_value("#entry-alternates").split("\n")
    assert question in DESIGN and alternates and set(alternates) <= set(DESIGN) - {question}
    assert page.input_value("#entry-answer") == ""  # staff never answered these conversations
    expect(page.locator("#draft-note")).to_contain_text("Staff never answered")

    # Approving without an answer is stopped here; the server's refusals are shown in its words.
    page.click("#approve")
    expect(page.locator("#message")).to_have_text("Write the answer first.")
    page.fill("#entry-answer", ANSWER)
    page.fill("#entry-id", "shipping-costs")  # a demo entry's id
    page.click("#approve")
    expect(page.locator("#message")).to_have_text(
        "Not approved: the knowledge base has an entry 'shipping-costs' already; choose another id")
    page.fill("#entry-id", "Not <b>a</b> slug")
    page.click("#approve")
    expect(page.locator("#message")).to_contain_text("Not approved: id: String should match pattern")
    expect(page.locator("#message b")).to_have_count(0)
    assert not (kb / "learned.yaml").exists()

    page.fill("#entry-id", "interior-design")
    page.click("#approve")
    expect(page.locator("#approved")).to_be_visible(timeout=60_000)
    expect(page.locator("#entry-id-shown")).to_have_text("interior-design")
    expect(row).to_have_count(0)  # the list is built again: the knowledge base covers the topic now
    expect(page.locator("#topic")).to_be_hidden()
    trade = topic_of(base_url, TRADE_IN)
    assert trade is not None  # the other gap stays
    expect(page.locator(f'#topic-rows tr[data-topic="{trade["id"]}"]')).to_be_visible()

    learned = yaml.safe_load((kb / "learned.yaml").read_text())
    assert [(e["id"], e["answer"]) for e in learned] == [("interior-design", ANSWER)]
    assert set(learned[0]["alternates"]) == set(alternates)
    deadline = time.monotonic() + 30
    while faq_source(base_url, f"later-{uuid.uuid4().hex[:4]}", DESIGN[0]) != "interior-design":
        assert time.monotonic() < deadline, "the approved entry does not answer"
        time.sleep(0.5)
    assert errors == []


def test_the_console_charts_resolution_and_reopens_and_links_the_top_topics(page, errors, served):
    from playwright.sync_api import expect

    base_url, _ = served
    sign_in_console(page, base_url, TOKEN)
    days = httpx.get(f"{base_url}/admin/stats/daily?days=30", headers=AUTH, timeout=30).json()["days"]
    rate = re.compile(r"^(\d+(\.\d)?%|no data)$")
    for chart, field in (("chart-resolution", "resolution_rate"), ("chart-reopen", "reopen_rate")):
        assert all(field in day for day in days), field
        expect(page.locator(f"#{chart} svg.chart")).to_have_count(1)
        expect(page.locator(f"#{chart} circle.point")).to_have_count(sum(d[field] is not None for d in days))
        expect(page.locator(f"#{chart}-latest")).to_have_text(rate)
    expect(page.locator("#chart-containment svg.chart")).to_have_count(1)

    listed = topics(base_url)[:5]
    assert listed
    top = page.locator("#top-topics li")
    expect(top).to_have_count(len(listed))
    expect(top.locator("a")).to_have_text([t["label"] for t in listed])
    expect(top.locator(".count")).to_have_text([str(t["size"]) for t in listed])
    assert top.first.locator("a").get_attribute("href") == f"/console/gaps#{listed[0]['id']}"
    # The link opens the Gaps page on that topic (the console's token carries over).
    top.first.locator("a").click()
    expect(page.locator("#topic")).to_be_visible()
    expect(page.locator("#topic-title")).to_have_text(listed[0]["label"])
    expect(page.locator(f'#topic-rows tr[data-topic="{listed[0]["id"]}"]')).to_have_attribute("aria-current", "true")
    assert errors == []
