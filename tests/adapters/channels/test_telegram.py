"""The Telegram channel end to end: the real app and python-telegram-bot, over HTTP, against a stand-in Bot API.

One app for the module (loading the model and index is the slow part), in polling mode:
its poller long-polls the stand-in, and `/telegram/webhook` (open in either mode once a
secret is set) is called through the TestClient. Each test uses chats of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest
from fastapi.testclient import TestClient
from telegram import Message, User

from adapters.channels import telegram as telegram_channel
from adapters.channels.telegram.format import message_text, split_text, utf16_len
from adapters.http.app import create_app
from adapters.runtime.components import Components
from adapters.runtime.settings import Settings
from bot.messages import Reply
from tests.support.paths import REPO_ROOT
from tests.support.standins.telegram_api import (
    STICKER,
    TelegramStandIn,
    group_chat,
    message_update,
    private_chat,
    user,
)

TOKEN = "123:ABC"
WEBHOOK_TOKEN = "456:DEF"
SECRET = "hook-secret_42"
ADMIN_TOKEN = "telegram-test-admin-0123456789abcdef01"
ADMIN_USER = 777
BOT_NAME = "frontdesk_123_bot"
KB = REPO_ROOT / "knowledge" / "demo"


@pytest.fixture(scope="module")
def tg():
    with TelegramStandIn(TOKEN, WEBHOOK_TOKEN) as standin:
        yield standin


@pytest.fixture(scope="module")
def client(tg, demo_model, redis_server, tmp_path_factory):
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX="telegram", FRONTDESK_ADMIN_TOKEN=ADMIN_TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu", FRONTDESK_KB=KB,
                        TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=tg.api_url, TELEGRAM_WEBHOOK_SECRET=SECRET,
                        TELEGRAM_ADMIN_USERS=f"{ADMIN_USER}, 778")
    with TestClient(create_app(settings)) as test_client:
        deadline = time.monotonic() + 180
        while test_client.get("/readyz").status_code != 200 or test_client.app.state.components.bot is None:
            assert time.monotonic() < deadline, test_client.get("/readyz").json()
            time.sleep(0.2)
        yield test_client


def core(client):
    return client.app.state.components.bot


def customer_texts(client, chat_id: int) -> list[str]:
    return [e["text"] for e in core(client).history("telegram", str(chat_id)) if e["role"] == "customer"]


def handled(tg: TelegramStandIn, update_id: int) -> None:
    """Wait until the poller confirmed `update_id` (it is done with it: answered, ignored or given up)."""
    tg.wait(lambda: tg.confirmed(TOKEN, update_id), what=f"update {update_id} to be confirmed")


@pytest.mark.slow
def test_private_message_by_polling_is_answered_once_and_confirmed_after_the_reply(client, tg):
    chat, ann = private_chat(5001, "Ann"), user(5001, "Ann")
    first = tg.inject(TOKEN, message_update(chat, ann, 1, "/start"))
    handled(tg, first)
    [reply] = tg.sent(TOKEN, 5001)
    assert reply["params"]["shown"].startswith("Hi Ann!") and reply["params"]["parse_mode"] == "HTML"
    # Telegram counts the update delivered at the first getUpdates with a higher offset: after the reply.
    sent_at = tg.event_index(lambda e: e is reply)
    assert tg.event_index(lambda e: e.get("confirmed") == first) > sent_at
    assert tg.served(TOKEN, first) == 1

    # Telegram delivering the same message again (as after a crash before the confirmation): not answered twice.
    again = tg.inject(TOKEN, message_update(chat, ann, 1, "/start"))
    handled(tg, again)
    assert len(tg.sent(TOKEN, 5001)) == 1
    assert customer_texts(client, 5001) == ["/start"]


@pytest.mark.slow
def test_reply_that_could_not_be_sent_leaves_the_update_unconfirmed_and_is_sent_once_later(client, tg):
    tg.fail_next(TOKEN, "sendMessage", 3, code=500)  # every attempt of the first delivery fails
    update = tg.inject(TOKEN, message_update(private_chat(5011), user(5011), 7, "/help"))
    handled(tg, update)
    assert tg.served(TOKEN, update) == 2  # fetched again because it was not confirmed
    [reply] = tg.sent(TOKEN, 5011)  # the core handled it once; the second delivery sent that answer
    assert "orders" in reply["params"]["shown"]
    assert customer_texts(client, 5011) == ["/help"]


@pytest.mark.slow
def test_flood_control_is_waited_out(client, tg):
    tg.fail_next(TOKEN, "sendMessage", 1, code=429, retry_after=1)
    update = tg.inject(TOKEN, message_update(private_chat(5012), user(5012), 3, "/help"))
    handled(tg, update)
    attempts = [c for c in tg.calls(TOKEN, "sendMessage") if c["params"].get("chat_id") == 5012]
    assert [c["ok"] for c in attempts] == [False, True] and tg.served(TOKEN, update) == 1


def post_update(client, update: dict, secret: str | None = SECRET, update_id: int = 900_001):
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return client.post("/telegram/webhook", json={"update_id": update_id, **update}, headers=headers)


@pytest.mark.slow
def test_update_by_webhook_is_answered_once(client, tg):
    tg.inject(TOKEN, message_update(private_chat(5002), user(5002), 1, "/start"))  # so the stand-in knows the chat
    tg.wait(lambda: tg.sent(TOKEN, 5002), what="the first answer")
    update = message_update(private_chat(5002), user(5002, "Bo"), 2, "/help")
    response = post_update(client, update, update_id=900_002)
    assert response.status_code == 200, response.text
    assert len(tg.sent(TOKEN, 5002)) == 2  # answered before the webhook call returned
    assert post_update(client, update, update_id=900_002).status_code == 200  # Telegram retrying the call
    assert len(tg.sent(TOKEN, 5002)) == 2
    assert customer_texts(client, 5002) == ["/start", "/help"]


@pytest.mark.slow
def test_webhook_refuses_a_wrong_or_missing_secret_and_bad_bodies(client, tg):
    update = message_update(private_chat(5003), user(5003), 1, "/start")
    assert post_update(client, update, secret="wrong").status_code == 401
    assert post_update(client, update, secret=None).status_code == 401
    assert post_update(client, update, secret=SECRET + "x").status_code == 401
    assert customer_texts(client, 5003) == [] and tg.sent(TOKEN, 5003) == []

    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "content-type": "application/json"}
    for body in (b"{not json", b"[1, 2]", b'{"update_id": "7"}', b'{"message": {}}',
                 b'{"update_id": 8, "message": "hello"}', b'{"update_id": 9, "message": {"text": "no chat"}}',
                 b"\xff\xfe"):
        response = client.post("/telegram/webhook", content=body, headers=headers)
        assert response.status_code == 400, (body, response.status_code, response.text)
        assert response.json()["detail"]


def test_webhook_without_a_secret_or_without_telegram_refuses_everything(tmp_path):
    update = {"update_id": 1, **message_update(private_chat(1), user(1), 1, "hi")}
    # No lifespan needed: the route decides from the settings before anything else.
    no_secret = TestClient(create_app(Settings(TELEGRAM_BOT_TOKEN=TOKEN, FRONTDESK_HOME=tmp_path)))
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": ""}, {"X-Telegram-Bot-Api-Secret-Token": "x"}):
        response = no_secret.post("/telegram/webhook", json=update, headers=headers)
        assert response.status_code == 403 and "TELEGRAM_WEBHOOK_SECRET" in response.json()["detail"]
    unconfigured = TestClient(create_app(Settings(TELEGRAM_WEBHOOK_SECRET=SECRET, FRONTDESK_HOME=tmp_path)))
    response = unconfigured.post("/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert response.status_code == 404 and "TELEGRAM_BOT_TOKEN" in response.json()["detail"]


@pytest.mark.slow
def test_sticker_gets_a_polite_text_reply_without_the_nlu(client, tg):
    update = tg.inject(TOKEN, message_update(private_chat(5004), user(5004), 1, sticker=STICKER))
    handled(tg, update)
    [reply] = tg.sent(TOKEN, 5004)
    assert "only read text" in reply["params"]["shown"]
    assert core(client).history("telegram", "5004") == []  # the core (and so the NLU) never saw it


@pytest.mark.slow
def test_group_messages_are_answered_only_when_meant_for_the_bot(client, tg):
    group, ann, bob = group_chat(-100500), user(6001, "Ann"), user(6002, "Bob")
    ignored = tg.inject(TOKEN, message_update(group, ann, 10, "hello everyone, what time is lunch?"))
    handled(tg, ignored)
    assert tg.sent(TOKEN, -100500) == []

    mention = tg.inject(TOKEN, message_update(group, ann, 11, f"hey @{BOT_NAME} what can you do?"))
    handled(tg, mention)
    [answer] = tg.sent(TOKEN, -100500)
    assert answer["params"]["reply_parameters"]["message_id"] == 11  # answers the asker's message
    bot_message = answer["result"]
    other_bot = tg.inject(TOKEN, message_update(group, bob, 12, "/help@some_other_bot"))
    reply = tg.inject(TOKEN, message_update(group, bob, 13, "thanks!", reply_to_message=bot_message))
    command = tg.inject(TOKEN, message_update(group, bob, 14, f"/help@{BOT_NAME}"))
    unrelated_reply = tg.inject(TOKEN, message_update(group, ann, 15, "me too",
                                                      reply_to_message={**bot_message, "from": bob,
                                                                        "message_id": 13, "text": "thanks!"}))
    for update in (other_bot, reply, command, unrelated_reply):
        handled(tg, update)
    assert customer_texts(client, -100500) == ["hey what can you do?", "thanks!", "/help"]
    assert [s["params"]["reply_parameters"]["message_id"] for s in tg.sent(TOKEN, -100500)] == [11, 13, 14]


@pytest.mark.slow
def test_user_text_is_html_escaped(client, tg):
    name = "<b>x</b> & co"
    update = tg.inject(TOKEN, message_update(private_chat(5005, name), user(5005, name), 1, "/start"))
    handled(tg, update)
    [reply] = tg.sent(TOKEN, 5005)
    assert reply["params"]["text"].startswith("Hi &lt;b&gt;x&lt;/b&gt; &amp; co!")
    assert reply["params"]["shown"].startswith(f"Hi {name}!")  # what the customer sees: the name, as typed


@pytest.mark.slow
def test_staff_reply_reaches_the_chat_split_at_the_limit_and_escaped(client, tg):
    update = tg.inject(TOKEN, message_update(private_chat(5006), user(5006, "Cy"), 1, "/human"))
    handled(tg, update)
    assert "colleague" in tg.sent(TOKEN, 5006)[0]["params"]["shown"]
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    [escalation] = [e for e in client.get("/admin/escalations", headers=auth).json()
                    if e["conversation_id"] == "telegram:5006"]
    assert escalation["channel"] == "telegram" and escalation["user_id"] == "5006"

    first = " ".join(["Here is what I found about your order."] * 75)  # ~2,900 characters
    second = "Check <script>alert(1)</script> & tell me. " * 30  # ~1,300 characters, markup-like
    text = f"{first}\n\n{second}".strip()
    assert utf16_len(text) > 4096
    response = client.post(f"/admin/escalations/{escalation['id']}/reply", json={"agent": "sam", "text": text},
                           headers=auth)
    assert response.status_code == 200, response.text
    shown = [s["params"]["shown"] for s in tg.sent(TOKEN, 5006)]
    assert "sam" in shown[1] and "joined" in shown[1]  # replying took the escalation: the customer is told
    assert shown[2:] == [f"sam:\n{first}", second.strip()]  # cut at the paragraph, both within the limit

    assert client.post(f"/admin/escalations/{escalation['id']}/resolve", json={"agent": "sam"},
                       headers=auth).status_code == 200
    handed_back, rating = (s["params"]["shown"] for s in tg.sent(TOKEN, 5006)[-2:])
    assert "handed you back" in handed_back and "How did we do" in rating  # then the 1-5 rating question


@pytest.mark.slow
def test_admin_commands_are_for_allow_listed_users_only(client, tg):
    chat = private_chat(5007)
    admin = tg.inject(TOKEN, message_update(chat, user(ADMIN_USER, "Admin"), 1, "/queue"))
    stranger = tg.inject(TOKEN, message_update(chat, user(888, "Eve"), 2, "/queue"))
    handled(tg, admin)
    handled(tg, stranger)
    admin_reply, stranger_reply = (s["params"]["shown"] for s in tg.sent(TOKEN, 5007))
    assert admin_reply.startswith(("Escalations:", "The escalation queue is empty"))
    assert "administrators only" in stranger_reply


@pytest.mark.slow
def test_suggestions_are_buttons_and_a_click_comes_back_as_a_message(client, tg):
    chat, dee = private_chat(5008), user(5008, "Dee")
    handled(tg, tg.inject(TOKEN, message_update(chat, dee, 1, "/start")))
    adapter = client.app.state.components.channels.outputs["telegram"]
    adapter.send("5008", Reply("Which one fits?", suggestions=("How much is shipping?", "Can I return an item?")))
    offer = tg.sent(TOKEN, 5008)[-1]
    keyboard = offer["params"]["reply_markup"]["inline_keyboard"]
    assert [[b["text"] for b in row] for row in keyboard] == [["How much is shipping?"], ["Can I return an item?"]]

    click = tg.inject(TOKEN, {"callback_query": {"id": "cbq-1", "from": dee, "chat_instance": "42",
                                                 "data": keyboard[1][0]["callback_data"], "message": offer["result"]}})
    handled(tg, click)
    assert [c["params"]["callback_query_id"] for c in tg.calls(TOKEN, "answerCallbackQuery")] == ["cbq-1"]
    assert customer_texts(client, 5008) == ["/start", "Can I return an item?"]
    assert len(tg.sent(TOKEN, 5008)) == 3  # the answer to the clicked question


@pytest.mark.asyncio
async def test_webhook_mode_registers_url_and_secret_and_never_polls_or_logs_the_token(tg, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    url = "https://bot.example.com/telegram/webhook"
    settings = Settings(TELEGRAM_BOT_TOKEN=WEBHOOK_TOKEN, TELEGRAM_API_URL=tg.api_url, TELEGRAM_WEBHOOK_URL=url,
                        TELEGRAM_WEBHOOK_SECRET=SECRET, FRONTDESK_HOME=tmp_path)
    adapter = await telegram_channel.start(Components(settings))
    try:
        for _ in range(500):
            if tg.bots[WEBHOOK_TOKEN].webhook:
                break
            await asyncio.sleep(0.02)
        assert tg.bots[WEBHOOK_TOKEN].webhook == {"url": url, "secret_token": SECRET,
                                                   "allowed_updates": ["message", "callback_query"]}
        for _ in range(25):  # watched for half a second, not looked at once: polling never starts
            assert tg.calls(WEBHOOK_TOKEN, "getUpdates") == []
            await asyncio.sleep(0.02)
    finally:
        await adapter.stop()

    # A token Telegram rejects: reported clearly, and neither token appears in any log line.
    rejected = Settings(TELEGRAM_BOT_TOKEN="999:NOPE-not-a-real-token", TELEGRAM_API_URL=tg.api_url,
                        TELEGRAM_WEBHOOK_URL=url, TELEGRAM_WEBHOOK_SECRET=SECRET, FRONTDESK_HOME=tmp_path)
    adapter = await telegram_channel.start(Components(rejected))
    try:
        for _ in range(500):
            if "rejected TELEGRAM_BOT_TOKEN" in caplog.text:
                break
            await asyncio.sleep(0.02)
    finally:
        await adapter.stop()
    assert "webhook registered" in caplog.text and "rejected TELEGRAM_BOT_TOKEN" in caplog.text
    assert "HTTP Request" not in caplog.text  # httpx's per-request lines (they carry the URL) are off
    assert WEBHOOK_TOKEN not in caplog.text and "999:NOPE" not in caplog.text


def test_split_text_prefers_paragraphs_then_lines_then_words_and_counts_like_telegram():
    assert split_text("short") == ["short"]
    words = " ".join(["word"] * 30)  # 149 characters
    pieces = split_text(words, 40)
    assert all(len(p) <= 40 for p in pieces) and " ".join(pieces) == words
    assert all(not p.startswith(" ") and not p.endswith(" ") for p in pieces)
    lines = "\n".join(["a line of text"] * 6)
    assert split_text(lines, 40) == ["a line of text\na line of text"] * 3
    assert split_text("x" * 100, 40) == ["x" * 40, "x" * 40, "x" * 20]  # no boundary at all: hard cut
    emoji = "😀" * 30  # two UTF-16 units each, as Telegram counts them
    assert [utf16_len(p) for p in split_text(emoji, 40)] == [40, 20]


def test_mentions_are_recognised_and_stripped():
    me = User(123, "Frontdesk", is_bot=True, username=BOT_NAME)
    group = group_chat(-1)

    def text_of(text: str, **extra) -> str | None:
        update = message_update(group, user(5), 1, text, **extra)
        return message_text(Message.de_json(update["message"], None), me)

    assert text_of(f"@{BOT_NAME.upper()}  where is my order?") == "where is my order?"
    assert text_of("😀 @frontdesk_123_bot hi") == "😀 hi"  # offsets are UTF-16: the emoji counts twice
    assert text_of(f"@{BOT_NAME}") == "/help"
    assert text_of("@someone_else hi") is None
    assert text_of("/start@frontdesk_123_bot ref-42") == "/start"
    assert text_of("/human") == "/human"
    assert text_of("/weather") is None  # a command not ours, not addressed to us


@pytest.mark.slow
def test_of_two_workers_one_polls_and_the_other_takes_over_when_it_stops(demo_model, redis_server, tmp_path):
    """Telegram answers 409 to two concurrent getUpdates: one worker polls, the other stands by."""
    token = "789:GHI"

    def worker(name: str) -> TestClient:
        settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                            FRONTDESK_REDIS_PREFIX="telegram-pair", FRONTDESK_HOME=tmp_path / name,
                            FRONTDESK_DEVICE="cpu", FRONTDESK_KB=KB, TELEGRAM_BOT_TOKEN=token,
                            TELEGRAM_API_URL=standin.api_url)
        client = TestClient(create_app(settings))
        client.__enter__()
        return client

    def poller(client: TestClient):
        return client.app.state.components.channels.outputs["telegram"].poller

    with TelegramStandIn(token) as standin, contextlib.ExitStack() as running:
        first, first_stopped = worker("a"), []
        running.callback(lambda: first_stopped or first.__exit__(None, None, None))
        standin.wait(lambda: poller(first).polls > 0, timeout=180, what="the first worker to poll")
        second = worker("b")
        running.callback(second.__exit__, None, None, None)
        standin.wait(lambda: poller(second).standing_by, timeout=180, what="the second worker to stand by")
        chat, ann = private_chat(6001, "Ann"), user(6001, "Ann")
        update = standin.inject(token, message_update(chat, ann, 1, "/start"))
        standin.wait(lambda: standin.confirmed(token, update), what="the update to be handled")
        assert len(standin.sent(token, 6001)) == 1
        assert poller(second).polls == 0  # never a second getUpdates beside the first worker's

        first.__exit__(None, None, None)  # a clean stop hands the role over at once
        first_stopped.append(True)
        standin.wait(lambda: poller(second).polls > 0, timeout=poller(second).standby_s + 10,
                     what="the second worker to take over")
        update = standin.inject(token, message_update(chat, ann, 2, "where is my order"))
        standin.wait(lambda: standin.confirmed(token, update), what="the update to be handled")
        # Answered once, by the second worker (the first's abandoned long poll may have fetched it too,
        # unconfirmed, which Telegram treats as not delivered).
        assert len(standin.sent(token, 6001)) == 2
        assert [e["text"] for e in poller(second).adapter.components.bot.history("telegram", "6001")
                if e["role"] == "customer"] == ["/start", "where is my order"]
