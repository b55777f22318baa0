"""Article citations under knowledge-base answers, rendered natively and escaped on every channel.

A hostile help-center article (markup, a Slack mention, `&`, a `|` and a URL full of
characters that end links) must come out as its text, inside one well-formed link, on
Slack, Telegram, the REST reply, the web chat history and the terminal; a `javascript:`
URL must never become a link. Slack and Telegram are also driven through their real SDKs
against the stand-in APIs (see tests/support/standins). The pages are in test_citations_browser.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from html.parser import HTMLParser

import pytest
from rich.console import Console

from adapters.channels.citations import LABEL_LIMIT, cited, safe_url
from adapters.channels.rest import ChatReply, ChatResponse
from adapters.channels.shell import print_reply
from adapters.channels.slack import format as slack_fmt
from adapters.channels.telegram.format import MAX_MESSAGE, render, utf16_len
from adapters.channels.web import public_history
from bot.escalations import Escalation
from bot.messages import Reply, Source, SourceKind
from tests.support.standins.telegram_api import parse_html

TITLE = "<script>alert(1)</script> *bold* <@U123> & co"
SECTION = "Step | two <b>"
URL = "https://help.example/a?x=1&y=<2>"
LABEL = f"{TITLE} › {SECTION}"
HOSTILE = Source(SourceKind.ARTICLE, "guides/hostile", TITLE, SECTION, URL)
SCRIPTED = Source(SourceKind.ARTICLE, "guides/scripted", TITLE, SECTION, "javascript:alert(1)")
FAQ = Source(SourceKind.FAQ, "shipping-cost")
ANSWER = "Returns are free within 30 days & <i>no</i> questions asked."


def answer(source: Source | None, text: str = ANSWER, **extra) -> Reply:
    return Reply(text, source=source, **extra)


# ---------------------------------------------------------------------- what counts as a link
@pytest.mark.parametrize("url", ["https://help.example/a", "http://help.example", "HTTPS://Help.Example/x#y",
                                 URL])
def test_http_and_https_urls_are_links(url):
    assert safe_url(url) == url


@pytest.mark.parametrize("url", ["", "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)",
                                 "data:text/html,<script>alert(1)</script>", "vbscript:x", "//evil.example/x",
                                 "/help/returns", "https://", "https:///path", "https://a b.example/",
                                 "https://help.example/\nx", "ftp://help.example/a", "https://[::1/"])
def test_anything_else_is_no_link(url):
    assert safe_url(url) == ""


def test_the_label_is_one_short_line_and_faq_answers_cite_nothing():
    assert cited(HOSTILE) == (LABEL, URL)
    assert cited(HOSTILE.to_dict()) == (LABEL, URL)  # as a transcript event stores it
    assert cited(SCRIPTED) == (LABEL, "")
    assert cited(FAQ) is None and cited(FAQ.to_dict()) is None and cited(None) is None
    assert cited({"kind": "nonsense", "id": "x"}) is None and cited({"title": "no kind"}) is None
    assert cited({"kind": "article", "id": "x", "title": 7}) is None
    assert cited(Source(SourceKind.ARTICLE, "a", "Two\nlines\x1b[31m", "", "")) == ("Two lines [31m", "")
    assert cited(Source(SourceKind.ARTICLE, "a", "", "", URL)) == (URL, URL)  # no title: the address
    assert cited(Source(SourceKind.ARTICLE, "a")) == ("a", "")
    long = cited(Source(SourceKind.ARTICLE, "a", "x" * 5000))
    assert long is not None and len(long[0]) == LABEL_LIMIT and long[0].endswith("…")


# ---------------------------------------------------------------------- Slack
LINK = re.compile(r"<([^<>]*)>")


def slack_link(mrkdwn: str) -> tuple[str, str]:
    """The one `<target|label>` link in `mrkdwn` (any other `<...>` would be a mention or a second link)."""
    links = LINK.findall(mrkdwn)
    assert len(links) == 1, mrkdwn
    target, bar, label = links[0].partition("|")
    assert bar and "|" not in label, links[0]
    return target, label


def test_slack_cites_the_article_in_a_context_block_as_one_escaped_link():
    [message] = slack_fmt.reply_messages(answer(HOSTILE))
    section, context = message["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn",
                                                    "text": slack_fmt.escape(ANSWER)}}
    assert context["type"] == "context"
    [element] = context["elements"]
    assert element["type"] == "mrkdwn"
    mrkdwn = element["text"]
    assert mrkdwn.startswith("Source: <")
    target, label = slack_link(mrkdwn)
    assert target == "https://help.example/a?x=1&amp;y=%3C2%3E"  # Slack reads &amp; back as &
    assert "&lt;script&gt;" in label and "&lt;@U123&gt;" in label and "&amp; co" in label
    assert "<@U123>" not in mrkdwn and "<script>" not in mrkdwn  # no mention ping, no markup
    assert slack_fmt.unescape(label) == LABEL.replace("|", "∣")
    assert message["text"] == f"{slack_fmt.escape(ANSWER)}\n\n{mrkdwn}"  # the notification text cites it too


def test_slack_shows_a_javascript_url_as_plain_text():
    [message] = slack_fmt.reply_messages(answer(SCRIPTED))
    mrkdwn = message["blocks"][1]["elements"][0]["text"]
    assert "<" not in mrkdwn and ">" not in mrkdwn and "javascript" not in mrkdwn
    assert mrkdwn == f"Source: {slack_fmt.escape(LABEL)}"  # no link: the | cannot break anything here


def test_slack_faq_answers_and_plain_replies_are_unchanged():
    assert slack_fmt.reply_messages(answer(FAQ)) == slack_fmt.reply_messages(answer(None)) == [
        {"text": slack_fmt.escape(ANSWER)}]


def test_slack_citation_sits_between_the_answer_and_its_buttons_in_the_last_message():
    long = "\n\n".join(["A paragraph of the article that goes on for a while."] * 120)
    messages = slack_fmt.reply_messages(answer(HOSTILE, long, suggestions=("Talk to a person",)))
    assert len(messages) > 1 and all("blocks" not in m for m in messages[:-1])
    assert all("Source:" not in m["text"] for m in messages[:-1])
    assert [b["type"] for b in messages[-1]["blocks"]] == ["section", "context", "actions"]
    assert "Source:" not in messages[-1]["blocks"][0]["text"]["text"]


def test_slack_escalation_transcript_names_the_source_escaped():
    transcript = [{"role": "customer", "text": "how do refunds work?"},
                  {"role": "bot", "text": ANSWER, "source": HOSTILE.to_dict()},
                  {"role": "bot", "text": "FAQ answer", "source": FAQ.to_dict()}]
    escalation = Escalation(id="e1", conversation_id="web:c1", channel="web", user_id="c1", reason="asked_for_human")
    lines = slack_fmt.escalation_message(escalation, transcript)["blocks"][2]["text"]["text"]
    assert f"*Bot:* {slack_fmt.escape(ANSWER)} (source: {slack_fmt.escape(LABEL)})" in lines
    assert "*Bot:* FAQ answer\n" not in lines and lines.endswith("*Bot:* FAQ answer")
    assert "<@U123>" not in lines and "<script>" not in lines


def test_slack_posts_the_citation_through_the_real_sdk(tmp_path):
    from adapters.channels.slack.adapter import SlackAdapter
    from adapters.runtime.components import Components
    from adapters.runtime.settings import Settings
    from tests.support.standins.slack_api import BOT_TOKEN, SlackStandIn

    with SlackStandIn() as slack:
        settings = Settings(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET="citations", SLACK_API_URL=slack.api_url,
                            FRONTDESK_HOME=tmp_path)

        async def make() -> SlackAdapter:  # Bolt's async app wants a running loop
            return SlackAdapter(Components(settings))

        adapter = asyncio.run(make())
        adapter.send("DCITE", answer(HOSTILE, suggestions=("Talk to a person",)))
        [posted] = slack.find("chat.postMessage", lambda args: args.get("channel") == "DCITE")
    blocks = posted["blocks"] if isinstance(posted["blocks"], list) else json.loads(posted["blocks"])
    assert [b["type"] for b in blocks] == ["section", "context", "actions"]
    target, _ = slack_link(blocks[1]["elements"][0]["text"])
    assert target == "https://help.example/a?x=1&amp;y=%3C2%3E"


# ---------------------------------------------------------------------- Telegram
class Anchors(HTMLParser):
    """Every start tag, and each `<a>` as (href, text), read the way an HTML parser reads them."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[tuple[str | None, str]] = []
        self._in_link = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "a":
            self.links.append((dict(attrs).get("href"), ""))
            self._in_link = True

    def handle_endtag(self, tag):
        if tag == "a":
            self._in_link = False

    def handle_data(self, data):
        if self._in_link:
            href, text = self.links[-1]
            self.links[-1] = (href, text + data)


def test_telegram_cites_the_article_as_one_html_link_with_the_answer_escaped():
    [message] = render(answer(HOSTILE))
    parsed = Anchors(message)
    assert parsed.links == [(URL, LABEL)]
    assert parsed.tags == ["a"]  # no <script>, <b> or <i> from the article or the answer
    assert f'href="{"https://help.example/a?x=1&amp;y=&lt;2&gt;"}"' in message
    assert parse_html(message) == f"{ANSWER}\n\nSource: {LABEL}"  # what Telegram shows, and it accepts it


def test_telegram_shows_a_javascript_url_as_plain_text():
    [message] = render(answer(SCRIPTED))
    parsed = Anchors(message)
    assert parsed.links == [] and parsed.tags == [] and "javascript" not in message
    assert parse_html(message) == f"{ANSWER}\n\nSource: {LABEL}"


def test_telegram_faq_answers_are_unchanged():
    assert render(answer(FAQ)) == render(answer(None)) == [
        "Returns are free within 30 days &amp; &lt;i&gt;no&lt;/i&gt; questions asked."]


@pytest.mark.parametrize("room", [0, 1, 2 + len(f"Source: {LABEL}") - 1, 2 + len(f"Source: {LABEL}"), 500])
def test_telegram_citation_stays_whole_within_the_limit_in_the_last_message_or_its_own(room):
    # The answer leaves `room` characters: the citation joins it only if it fits whole.
    text = "x" * (MAX_MESSAGE - room)
    messages = render(answer(HOSTILE, text))
    shown = [parse_html(m) for m in messages]  # every piece is HTML Telegram accepts
    assert all(utf16_len(s) <= MAX_MESSAGE for s in shown)
    assert sum("<a " in m for m in messages) == 1 and "<a " in messages[-1]
    assert Anchors(messages[-1]).links == [(URL, LABEL)]
    fits = room >= 2 + utf16_len(f"Source: {LABEL}")
    assert shown[-1] == (f"{text}\n\nSource: {LABEL}" if fits else f"Source: {LABEL}")


def test_telegram_citation_joins_the_last_piece_of_a_long_answer():
    first = " ".join(["Here is what the article says about it."] * 102)  # 4,079 characters
    text = f"{first}\n\nAnd a last paragraph & <b>more</b>."
    messages = render(answer(HOSTILE, text))
    assert [parse_html(m) for m in messages] == [first, f"And a last paragraph & <b>more</b>.\n\nSource: {LABEL}"]
    assert Anchors(messages[1]).links == [(URL, LABEL)] and "<a " not in messages[0]


def test_telegram_agent_label_counts_against_the_room_for_the_citation():
    # A staff reply never has a source today; if one does, its name line must not push the piece over.
    label_line = len("sam:") + 1
    citation = 2 + utf16_len(f"Source: {LABEL}")
    text = "y" * (MAX_MESSAGE - label_line - citation + 1)
    messages = render(Reply(text, sender="agent", agent="sam", source=HOSTILE))
    assert [utf16_len(parse_html(m)) <= MAX_MESSAGE for m in messages] == [True, True]
    assert parse_html(messages[1]) == f"Source: {LABEL}"


def test_telegram_sends_the_citation_as_html_through_the_real_sdk():
    from telegram import Bot

    from adapters.channels.telegram.adapter import TelegramAdapter
    from tests.support.standins.telegram_api import TelegramStandIn, message_update, private_chat, user

    token = "321:CITE"
    with TelegramStandIn(token) as tg:
        tg.inject(token, message_update(private_chat(4242), user(4242), 1, "hi"))  # the chat becomes known

        async def deliver() -> None:
            bot = Bot(token, base_url=tg.api_url)
            await bot.initialize()
            try:
                adapter = TelegramAdapter(None, bot, asyncio.get_running_loop())
                await adapter.deliver(4242, [answer(HOSTILE, suggestions=("Talk to a person",)),
                                             answer(SCRIPTED)])
            finally:
                await bot.shutdown()

        asyncio.run(deliver())
        sent = tg.sent(token, 4242)
    assert [s["params"]["parse_mode"] for s in sent] == ["HTML", "HTML"]
    assert [s["params"]["shown"] for s in sent] == [f"{ANSWER}\n\nSource: {LABEL}"] * 2
    assert Anchors(sent[0]["params"]["text"]).links == [(URL, LABEL)]
    assert Anchors(sent[1]["params"]["text"]).links == []
    assert sent[0]["params"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "Talk to a person"


# ---------------------------------------------------------------------- REST
def test_rest_reply_carries_source_and_suggestion_sources_through_json():
    reply = Reply(ANSWER, suggestions=("Returns › Refund timing", "Talk to a person"), source=HOSTILE,
                  suggestion_sources=(SCRIPTED, None))
    body = json.loads(ChatResponse(replies=[ChatReply(**reply.to_dict())]).model_dump_json())
    [out] = body["replies"]
    assert out["source"] == HOSTILE.to_dict() == {"kind": "article", "id": "guides/hostile", "title": TITLE,
                                                  "section": SECTION, "url": URL}
    assert out["suggestion_sources"] == [SCRIPTED.to_dict(), None]
    assert Reply.from_dict(out) == reply  # a client reading the JSON gets the reply back whole

    faq = json.loads(ChatReply(**Reply("FAQ answer", source=FAQ).to_dict()).model_dump_json())
    assert faq["source"] == {"kind": "faq", "id": "shipping-cost"}  # only the fields an FAQ source has
    plain = json.loads(ChatReply(**Reply("hi").to_dict()).model_dump_json())
    assert plain["source"] is None and plain["suggestion_sources"] == []


def test_rest_openapi_documents_the_source(tmp_path):
    from adapters.http.app import create_app
    from adapters.runtime.settings import Settings

    schema = create_app(Settings(FRONTDESK_HOME=tmp_path)).openapi()["components"]["schemas"]
    reply = schema["ChatReply"]["properties"]
    assert "source" in reply and "suggestion_sources" in reply
    source = schema["ChatSource"]
    assert source["required"] == ["kind", "id"] and source["properties"]["kind"]["enum"] == ["faq", "article"]


# ---------------------------------------------------------------------- web chat history, terminal
def test_web_history_keeps_a_bot_answers_source_and_drops_unreadable_ones():
    events = [{"role": "customer", "text": "refunds?", "at": 1.0},
              {"role": "bot", "text": ANSWER, "at": 2.0, "source": HOSTILE.to_dict()},
              {"role": "bot", "text": "FAQ", "at": 3.0, "source": FAQ.to_dict()},
              {"role": "bot", "text": "odd", "at": 4.0, "source": {"kind": "elsewhere", "id": "x"}},
              {"role": "bot", "text": "odder", "at": 5.0, "source": "not a dict"}]
    shown = public_history(events)
    assert [e.get("source") for e in shown] == [None, HOSTILE.to_dict(), FAQ.to_dict(), None, None]
    assert "source" not in shown[0] and "source" not in shown[3]


def test_shell_prints_the_citation_under_the_answer():
    out = io.StringIO()
    console = Console(file=out, width=400, color_system=None)
    print_reply(console, answer(HOSTILE))
    print_reply(console, answer(SCRIPTED))
    print_reply(console, answer(FAQ))
    assert out.getvalue().splitlines() == [f"bot> {ANSWER}", f"    Source: {LABEL} ({URL})",
                                           f"bot> {ANSWER}", f"    Source: {LABEL}",
                                           f"bot> {ANSWER}"]
