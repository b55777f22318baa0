"""Slack delivery under trouble (issue 14): retried posts, staff told about undelivered messages, ack after intake.

Signed requests go into the real app; everything the app says to Slack goes to the stand-in
(`tests/support/standins/slack_api.py`), which can fail chosen calls with 5xx or 429 + Retry-After.
"""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient

from adapters.http.app import create_app
from adapters.runtime.components import Components
from adapters.runtime.settings import Settings
from bot.keys import Keys
from tests.adapters.channels.test_slack import ADMIN_TOKEN, DEMO_KB, SECRET, SUPPORT, dm, post_event, wait_until_ready
from tests.conftest import _free_ports, _redis_processes, _wait_for
from tests.support.fleet import never
from tests.support.standins.slack_api import BOT_TOKEN, SlackStandIn

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def slack():
    with SlackStandIn(users={"UDELIV1": "Dee"}) as standin:
        yield standin


def make_settings(tiny_model, redis_url: str, home, slack: SlackStandIn) -> Settings:
    return Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=redis_url,
                    FRONTDESK_REDIS_PREFIX=f"slack-deliv-{uuid.uuid4().hex[:6]}", FRONTDESK_ADMIN_TOKEN=ADMIN_TOKEN,
                    FRONTDESK_HOME=home, FRONTDESK_DEVICE="cpu", FRONTDESK_KB=DEMO_KB, SLACK_BOT_TOKEN=BOT_TOKEN,
                    SLACK_SIGNING_SECRET=SECRET, SLACK_SUPPORT_CHANNEL=SUPPORT, SLACK_API_URL=slack.api_url)


@pytest.fixture(scope="module")
def client(tiny_model, demo_kb, redis_server, slack, tmp_path_factory):
    settings = make_settings(tiny_model, f"unix://{redis_server.socket_file}", tmp_path_factory.mktemp("home"), slack)
    with TestClient(create_app(settings, Components(settings, kb=demo_kb))) as test_client:
        wait_until_ready(test_client)
        yield test_client


def to_channel(channel: str):
    return lambda args: args.get("channel") == channel


def test_a_reply_failing_with_500_then_429_is_retried_and_arrives_once(client, slack):
    channel = "DFLAKY1"
    slack.fail("chat.postMessage", [500, (429, 1)], where=to_channel(channel))
    assert post_event(client, dm(channel, "UDELIV1", "hello")).status_code == 200
    answer = slack.wait_for("chat.postMessage", to_channel(channel), timeout=30)[0]
    time.sleep(1.0)  # a late duplicate would have been posted by now
    attempts = slack.attempts("chat.postMessage", to_channel(channel))
    assert [a["status"] for a in attempts] == [500, 429, 200]
    assert attempts[2]["at"] - attempts[1]["at"] >= 1.0  # Retry-After honoured
    # The answer reached the customer exactly once.
    assert len(slack.find("chat.postMessage", lambda a: a.get("channel") == channel
                          and a.get("text") == answer["text"])) == 1
    assert not any(e.get("delivered") is False for e in client.app.state.components.bot.history("slack", channel))


def test_a_reply_slack_keeps_refusing_is_given_up_logged_without_text_and_marked(client, slack, caplog):
    channel = "DREFUSED1"
    slack.fail("chat.postMessage", None, where=to_channel(channel))
    bot = client.app.state.components.bot
    with caplog.at_level("WARNING", logger="frontdesk.slack"):
        assert post_event(client, dm(channel, "UDELIV1", "my secret words")).status_code == 200
        _wait_for(lambda: any(e.get("delivered") is False for e in bot.history("slack", channel)),
                  "the undelivered marker")
    attempts = slack.attempts("chat.postMessage", to_channel(channel))
    assert [a["status"] for a in attempts] == [500] * 4  # one attempt and three retries, then given up
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert gave_up and all(channel in m and "HTTP 500" in m for m in gave_up)
    assert not any("my secret words" in r.getMessage() for r in caplog.records)


def test_a_staff_reply_slack_refuses_answers_502_and_is_marked_undelivered(client, slack):
    channel, user = "DSTAFFFAIL1", "UDELIV2"
    assert post_event(client, dm(channel, user, "/human")).status_code == 200
    slack.wait_for("chat.postMessage", to_channel(channel))  # "a colleague will be with you"
    bot = client.app.state.components.bot
    escalation = next(r for r in bot.queue.list("open") if r.conversation_id == f"slack:{channel}")
    slack.fail("chat.postMessage", None, where=to_channel(channel))  # from now on Slack refuses this channel

    claimed = client.post(f"/admin/escalations/{escalation.id}/claim", json={"agent": "Sam"}, headers=ADMIN)
    assert claimed.status_code == 200, claimed.text  # the claim happened; its notice to the customer did not
    assert claimed.json()["status"] == "claimed" and claimed.json()["delivered"] is False

    replied = client.post(f"/admin/escalations/{escalation.id}/reply", json={"agent": "Sam", "text": "Hi there"},
                          headers=ADMIN)
    assert replied.status_code == 502, replied.text
    body = replied.json()
    assert body["delivered"] is False and "not delivered" in body["detail"] and body["id"] == escalation.id

    detail = client.get(f"/admin/escalations/{escalation.id}", headers=ADMIN).json()
    agent_lines = [e for e in detail["transcript"] if e["role"] == "agent"]
    assert [(e["text"], e.get("delivered")) for e in agent_lines] == [("Hi there", False)]
    assert any(e.get("delivered") is False and e["role"] == "system" for e in detail["transcript"])  # the join notice
    assert slack.find("chat.postMessage", lambda a: a.get("channel") == channel and "Hi there" in a.get("text", "")) \
        == []

    slack.heal()  # Slack accepts again: the same reply now answers 200, delivered
    again = client.post(f"/admin/escalations/{escalation.id}/reply", json={"agent": "Sam", "text": "Hi again"},
                        headers=ADMIN)
    assert again.status_code == 200 and again.json()["delivered"] is True
    assert slack.find("chat.postMessage", lambda a: a.get("channel") == channel and "Hi again" in a.get("text", ""))
    resolved = client.post(f"/admin/escalations/{escalation.id}/resolve", json={"agent": "Sam"}, headers=ADMIN)
    assert resolved.status_code == 200 and resolved.json()["delivered"] is True


def test_an_event_is_queued_in_redis_before_its_200(client, slack, monkeypatch):
    channel = "DINTAKE1"
    components = client.app.state.components
    bot, engine, store, keys = (components.bot, components.engine, components.redis,
                                Keys(components.settings.redis_prefix))
    real_predict = engine.predict_one

    def slow_predict(text):  # handling takes 2 s: the 200 must not wait for it, only for the queueing
        time.sleep(2.0)
        return real_predict(text)

    monkeypatch.setattr(engine, "predict_one", slow_predict)
    response = post_event(client, dm(channel, "UDELIV1", "where is my order?"))
    conversation = f"slack:{channel}"
    queued = (store.llen(keys.conv(conversation, "inbox"))
              + store.llen(keys.conv(conversation, "processing")))
    handled = [e["text"] for e in bot.history("slack", channel) if e["role"] == "customer"]
    assert response.status_code == 200 and response.elapsed_s < 2.0
    assert queued == 1 or handled == ["where is my order?"]
    slack.wait_for("chat.postMessage", to_channel(channel), timeout=30)


def test_an_event_gets_a_5xx_when_redis_is_unreachable(tiny_model, demo_kb, slack, tmp_path):
    (port,) = _free_ports(1)
    channel = "DNOREDIS1"
    with _redis_processes(tmp_path) as start:
        server = start("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
        import redis

        _wait_for(lambda: redis.Redis(port=port).ping(), "redis-server")
        settings = make_settings(tiny_model, f"redis://127.0.0.1:{port}/0", tmp_path / "home", slack)
        with TestClient(create_app(settings, Components(settings, kb=demo_kb))) as app_client:
            wait_until_ready(app_client)
            server.terminate()
            server.wait(timeout=10)
            response = post_event(app_client, dm(channel, "UDELIV1", "hello"))
            assert response.status_code == 503, response.text
            assert response.elapsed_s < 3  # still within Slack's 3 s, so Slack retries instead of timing out
            never(lambda: slack.find("chat.postMessage", to_channel(channel)), 1.0)  # no apology posted for it
