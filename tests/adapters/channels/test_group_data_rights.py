"""Data rights where several people share a conversation and where the bot copied customers' words to staff.

The real app with Telegram (python-telegram-bot polling a stand-in Bot API) and Slack (slack-bolt and
slack_sdk against a stand-in Web API), one Redis. In a Telegram group two people ask the bot things:
exporting one returns only their words, erasing one leaves the other's. In a Slack channel thread two
people talk to the bot, one asks for a person: the escalation post in the support channel shows both,
and while staff hold the conversation each one's messages are relayed into its thread. Erasing one
deletes (chat.delete) the escalation post and their relays, not the other's relay; a post Slack refuses
to delete is reported and kept, and the next erasure deletes it. Afterwards no Redis key or value holds
the erased person's id or words.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from slack_sdk.signature import SignatureVerifier

from adapters.http.app import create_app
from adapters.runtime.components import Components
from adapters.runtime.settings import Settings
from tests.support.fleet import until
from tests.support.redis_search import every_key_and_value, naming
from tests.support.standins.slack_api import BOT_TOKEN, BOT_USER_ID, TEAM_ID, SlackStandIn
from tests.support.standins.telegram_api import TelegramStandIn, group_chat, message_update, user

pytestmark = pytest.mark.slow

TG_TOKEN, BOT_NAME = "123:ABC", "frontdesk_123_bot"  # the stand-in names the bot after its token
SECRET = "rights-slack-signing-secret"
ADMIN = {"Authorization": "Bearer rights-channels-admin-0123456789abcdef"}
SUPPORT = "CSUPPORT9"
CASEY, DANA = "UCASEY7731", "UDANA2208"
ANN, BOB = 918273645, 918273646
ANN_WORDS = ("zorbly quenflax", "wibbleton", "quimbleworth")
CASEY_WORDS = ("glorpwhistle", "snickerbane")


@pytest.fixture(scope="module")
def slack():
    with SlackStandIn(users={CASEY: "Casey", DANA: "Dana", "USTAFF9": "Sam Staff"}) as standin:
        yield standin


@pytest.fixture(scope="module")
def tg():
    with TelegramStandIn(TG_TOKEN) as standin:
        yield standin


@pytest.fixture(scope="module")
def client(demo_model, demo_kb, redis_server, slack, tg, tmp_path_factory):
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"rights-{uuid.uuid4().hex[:6]}",
                        FRONTDESK_ADMIN_TOKEN=ADMIN["Authorization"].removeprefix("Bearer "),
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu",
                        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_SUPPORT_CHANNEL=SUPPORT,
                        SLACK_API_URL=slack.api_url, TELEGRAM_BOT_TOKEN=TG_TOKEN, TELEGRAM_API_URL=tg.api_url)
    with TestClient(create_app(settings, Components(settings, kb=demo_kb))) as test_client:
        until(lambda: test_client.get("/readyz").status_code == 200
              and test_client.app.state.components.bot is not None, 180)
        yield test_client


def history(client, channel: str, conversation: str) -> list[dict]:
    return client.app.state.components.bot.history(channel, conversation)


def erase(client, channel: str, user_id: str | int) -> dict:
    response = client.delete(f"/admin/customers/{channel}/{user_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def export(client, channel: str, user_id: str | int) -> dict:
    response = client.get(f"/admin/customers/{channel}/{user_id}/export", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def mention(client, user_id: str, text: str, thread_ts: str | None = None) -> str:
    """An app_mention in #public, signed as Slack signs it; its ts."""
    ts = f"{time.time():.6f}"
    event = {"type": "app_mention", "channel": "CPUBLIC9", "user": user_id, "ts": ts, "event_ts": ts,
             "text": f"<@{BOT_USER_ID}> {text}", "team": TEAM_ID, **({"thread_ts": thread_ts} if thread_ts else {})}
    body = json.dumps({"token": "legacy", "team_id": TEAM_ID, "api_app_id": "ASTANDIN", "type": "event_callback",
                       "event": event, "event_id": f"Ev{uuid.uuid4().hex[:10]}", "event_time": int(time.time())})
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
               "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)}
    assert client.post("/slack/events", content=body, headers=headers).status_code == 200
    return ts


def test_a_telegram_group_member_is_exported_and_erased_alone(client, tg):
    group = group_chat(-100610)
    said = [(user(ANN, "Ann"), f"do you stock the {ANN_WORDS[0]} in {ANN_WORDS[1]} blue"),
            (user(BOB, "Bob"), "is the frazzleplonk rug made of gribbleton wool"),
            (user(ANN, "Ann"), f"does the {ANN_WORDS[2]} lamp come with a plug")]
    for message_id, (sender, text) in enumerate(said, start=20):
        update = tg.inject(TG_TOKEN, message_update(group, sender, message_id, f"@{BOT_NAME} {text}"))
        tg.wait(lambda update=update: tg.confirmed(TG_TOKEN, update), what=f"update {update}")
    customers = [e["text"] for e in history(client, "telegram", "-100610") if e["role"] == "customer"]
    assert customers == [text for _, text in said]

    ann = export(client, "telegram", ANN)
    [shared] = ann["conversations"]
    assert shared["shared"] and [e["text"] for e in shared["transcript"] if e["role"] == "customer"] == [
        said[0][1], said[2][1]]
    assert "frazzleplonk" not in json.dumps(ann) and str(BOB) not in json.dumps(ann)
    bob = export(client, "telegram", BOB)
    assert "quenflax" not in json.dumps(bob) and str(ANN) not in json.dumps(bob)

    removed = erase(client, "telegram", ANN)
    assert removed["shared_conversations"] == ["telegram:-100610"] and removed["shared_events_removed"] >= 4
    left = naming(every_key_and_value(client.app.state.components.redis), str(ANN), *ANN_WORDS)
    assert left == [], left[:5]
    assert [e["text"] for e in history(client, "telegram", "-100610") if e["role"] == "customer"] == [said[1][1]]
    assert export(client, "telegram", BOB)["conversations"][0]["transcript"] == \
        bob["conversations"][0]["transcript"]


def test_slack_posts_holding_an_erased_persons_words_are_deleted_and_a_refusal_is_reported(client, slack):
    root = mention(client, CASEY, f"do you stock the {CASEY_WORDS[0]} in teal")
    conversation = f"CPUBLIC9:{root}"
    until(lambda: len(history(client, "slack", conversation)) >= 2)
    mention(client, DANA, "is the frazzleplonk rug made of gribbleton wool", thread_ts=root)
    until(lambda: sum(e["role"] == "customer" for e in history(client, "slack", conversation)) == 2)
    mention(client, CASEY, "/human", thread_ts=root)
    [post] = slack.wait_for("chat.postMessage", lambda a: a.get("channel") == SUPPORT and not a.get("thread_ts")
                            and f"customer {CASEY}" in a.get("text", ""))
    assert CASEY_WORDS[0] in json.dumps(post) and "frazzleplonk" in json.dumps(post)  # both people's words
    escalation = next(e for e in client.get("/admin/escalations", headers=ADMIN).json() if e["user_id"] == CASEY)
    assert client.post(f"/admin/escalations/{escalation['id']}/claim", json={"agent": "sam"},
                       headers=ADMIN).status_code == 200
    mention(client, CASEY, f"my {CASEY_WORDS[1]} is still missing", thread_ts=root)
    mention(client, DANA, "me too, the gribbleton one", thread_ts=root)
    relays = slack.wait_for("chat.postMessage", lambda a: a.get("channel") == SUPPORT and a.get("thread_ts"),
                            count=2)
    assert any(CASEY_WORDS[1] in r["text"] for r in relays) and any("gribbleton" in r["text"] for r in relays)
    bot = client.app.state.components.bot
    escalation_ts = bot.queue.get(escalation["id"]).link("slack").partition(":")[2]
    # The escalation post holds both people's words: it is listed for both; each relay for its writer only.
    until(lambda: len(bot.posts.for_customer("slack", DANA)) == 2)
    casey_posts, dana_posts = (bot.posts.for_customer("slack", who) for who in (CASEY, DANA))
    [casey_relay] = [link.ts for link in casey_posts if link.ts != escalation_ts]
    [dana_relay] = [link.ts for link in dana_posts if link.ts != escalation_ts]
    assert {link.ts for link in casey_posts} == {escalation_ts, casey_relay}

    slack.refuse("chat.delete", "cant_delete_message", where=lambda a: a.get("ts") == casey_relay)
    try:
        first = erase(client, "slack", CASEY)
    finally:
        slack.heal()
    assert first["slack_posts_deleted"] == 1 and first["slack_posts_not_deleted"] == [
        {"channel": SUPPORT, "ts": casey_relay, "error": "cant_delete_message"}]
    assert slack.find("chat.delete", lambda a: a.get("ts") == escalation_ts)  # the escalation post went
    assert naming(every_key_and_value(bot.posts.redis), CASEY)  # the link kept for the next erasure
    second = erase(client, "slack", CASEY)  # run again: the post kept for it is deleted now
    assert second["slack_posts_deleted"] == 1 and second["slack_posts_not_deleted"] == []
    assert slack.find("chat.delete", lambda a: a.get("ts") == casey_relay)
    assert not slack.find("chat.delete", lambda a: a.get("ts") == dana_relay)  # the other person's relay stays

    left = naming(every_key_and_value(client.app.state.components.redis), CASEY, *CASEY_WORDS)
    assert left == [], left[:5]
    kept = [e["text"] for e in history(client, "slack", conversation) if e["role"] == "customer"]
    assert kept == ["is the frazzleplonk rug made of gribbleton wool", "me too, the gribbleton one"]

