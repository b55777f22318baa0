"""Article citations in the web chat and the staff console, in a real browser against the real app.

The answers are fed the way the server carries them: live, published to the conversation's
outbox as the bot does (the page gets them in `reply` frames with `source`, the same frames a
direct answer comes in), and in the transcript, as the bot records a reply (an event with the
source as `Source.to_dict()`), which the page redraws after a reload and the console shows.
A hostile article must appear as text inside one `<a>` to its http(s) URL; a `javascript:` URL
must not become a link, and nothing in the article may run.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
import redis

from adapters.channels.web import session_hash
from adapters.runtime.settings import Settings
from bot.keys import Keys
from bot.messages import Reply
from bot.outbox import Outbox
from bot.store import ConversationStore
from tests.adapters.channels.test_citations import ANSWER, FAQ, HOSTILE, LABEL, SCRIPTED
from tests.support.liveserver import live_app
from tests.support.paths import REPO_ROOT
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

pytestmark = pytest.mark.browser  # Debian's chromium through Playwright

TOKEN = "citations-test-token-0123456789abcdef0"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEMO_KB = REPO_ROOT / "knowledge" / "demo"
LINKED = "https://help.example/a?x=1&y=%3C2%3E"  # the URL as the browser reads it (new URL(...).href)


@pytest.fixture(scope="module")
def served(demo_model, redis_server, tmp_path_factory):
    prefix = f"cite-{uuid.uuid4().hex[:8]}"
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=prefix, FRONTDESK_ADMIN_TOKEN=TOKEN, FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu", FRONTDESK_KB=DEMO_KB)
    client = redis.Redis(unix_socket_path=redis_server.socket_file)
    with live_app(settings) as url:
        yield url, Keys(prefix), client
    client.close()


def record_answers(client, keys: Keys, conversation: str) -> None:
    """Bot answers in the transcript as the bot records them: the source beside the text."""
    store = ConversationStore(client, keys)
    for source in (HOSTILE, SCRIPTED, FAQ):
        store.append(conversation, "bot", ANSWER, source=source.to_dict())


def watch_for_scripts(page) -> list[str]:
    """Dialogs opened by the page (the hostile title's `alert(1)`, were it ever run)."""
    opened: list[str] = []

    def on_dialog(dialog) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return opened


def check_citations(bots) -> None:
    """Three bot answers: cited with a link, cited as text (javascript: URL), and an FAQ answer citing nothing."""
    from playwright.sync_api import expect

    expect(bots).to_have_count(3)
    linked, unlinked, faq = bots.nth(0), bots.nth(1), bots.nth(2)
    expect(linked.locator(".text")).to_have_text(ANSWER)
    expect(linked.locator(".source")).to_have_text(f"Source: {LABEL}")
    link = linked.locator(".source a")
    expect(link).to_have_count(1)
    expect(link).to_have_text(LABEL)
    expect(link).to_have_attribute("href", LINKED)
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(unlinked.locator(".source")).to_have_text(f"Source: {LABEL}")
    expect(unlinked.locator(".source a")).to_have_count(0)
    expect(faq.locator(".source")).to_have_count(0)


def test_web_chat_shows_the_citation_under_the_answer_live_and_after_a_reload(page, served):
    from playwright.sync_api import expect

    base_url, keys, client = served
    opened = watch_for_scripts(page)
    page.goto(f"{base_url}/")
    expect(page.locator("#status")).to_have_text("Connected")
    session = page.evaluate("localStorage.getItem('frontdesk.web.session')")
    conversation = f"web:{session_hash(session)}"

    outbox = Outbox(client, keys)
    for source in (HOSTILE, SCRIPTED, FAQ):  # as the server pushes a reply to an open page
        outbox.publish(conversation, Reply(ANSWER, source=source))
    log = page.get_by_role("log")
    check_citations(log.locator(".msg-bot"))
    # The citation sits inside its answer's bubble, under the text.
    first = log.locator(".msg-bot").first
    text_box, source_box = first.locator(".text").bounding_box(), first.locator(".source").bounding_box()
    assert text_box["y"] + text_box["height"] <= source_box["y"]

    record_answers(client, keys, conversation)
    page.reload()
    expect(page.locator("#status")).to_have_text("Connected")
    check_citations(log.locator(".msg-bot"))  # redrawn from the transcript

    assert page.locator("script:not([src]), #log b, #log i").count() == 0
    assert page.locator('a[href^="javascript:" i]').count() == 0
    assert opened == [] and page.evaluate("window.pwned") is None


def test_console_transcript_shows_the_citation_beside_the_bot_answer(page, served):
    from playwright.sync_api import expect

    base_url, keys, client = served
    sender = f"cite-{uuid.uuid4().hex[:6]}"
    response = httpx.post(f"{base_url}/chat", json={"sender": sender, "message": "/human"}, headers=CHAT_AUTH,
                          timeout=60)
    assert response.status_code == 200, response.text
    conversation = f"rest:{sender}"
    record_answers(client, keys, conversation)
    queue = httpx.get(f"{base_url}/admin/escalations", headers=AUTH, timeout=30).json()
    [escalation] = [r["id"] for r in queue if r["conversation_id"] == conversation]

    opened = watch_for_scripts(page)
    page.goto(f"{base_url}/console")
    page.fill("#signin-token", TOKEN)
    page.fill("#signin-agent", "Sam")
    page.click("#signin-submit")
    page.locator(f'#queue button[data-id="{escalation}"]').click()
    bots = page.locator("#transcript li.role-bot")
    expect(bots.filter(has_text=ANSWER)).to_have_count(3)
    check_citations(bots.filter(has_text=ANSWER))
    assert page.locator("#transcript b, #transcript i, #transcript script").count() == 0
    assert page.locator('a[href^="javascript:" i]').count() == 0
    assert opened == [] and page.evaluate("window.pwned") is None
