"""What staff do in Slack is audited, and a Slack retry of a staff thread reply reaches the customer once.

Signed requests go into the real app and slack-bolt; everything the app says to Slack goes to the stand-in
(`tests/support/standins/slack_api.py`). Slack delivers an event again, with the same `event_id` and an
`X-Slack-Retry-Num` header, when its first delivery was not acknowledged in time.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from adapters.http.app import create_app
from adapters.runtime.components import Components
from adapters.runtime.settings import Settings
from tests.adapters.channels.test_slack import (
    ADMIN_TOKEN,
    DEMO_KB,
    SECRET,
    SUPPORT,
    click,
    dm,
    post_event,
    support_post_for,
    wait_until_ready,
)
from tests.support.fleet import until
from tests.support.standins.slack_api import BOT_TOKEN, BOT_USER_ID, SlackStandIn

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
STAFF, CUSTOMER = "USTAFF7", "UCUST7"
STAFF_WORDS = "Your refund of 42 euros is on its way"


@pytest.fixture(scope="module")
def slack():
    with SlackStandIn(users={STAFF: "Sam Staff", CUSTOMER: "Casey"}) as standin:
        yield standin


@pytest.fixture(scope="module")
def client(tiny_model, demo_kb, redis_server, slack, tmp_path_factory):
    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"slack-staff-{uuid.uuid4().hex[:6]}", FRONTDESK_ADMIN_TOKEN=ADMIN_TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu", FRONTDESK_KB=DEMO_KB,
                        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_SUPPORT_CHANNEL=SUPPORT,
                        SLACK_API_URL=slack.api_url)
    with TestClient(create_app(settings, Components(settings, kb=demo_kb))) as test_client:
        wait_until_ready(test_client)
        yield test_client


def to(channel: str, text: str | None = None):
    return lambda a: a.get("channel") == channel and (text is None or text in a.get("text", ""))


def test_a_retried_staff_reply_reaches_the_customer_once_and_every_staff_action_is_audited(client, slack, caplog):
    caplog.set_level(logging.INFO, logger="frontdesk.slack")
    customer = "DSTAFF7"
    assert post_event(client, dm(customer, CUSTOMER, "/human")).status_code == 200
    post = support_post_for(slack, CUSTOMER)
    buttons = next(b for b in post["blocks"] if b["type"] == "actions")["elements"]
    escalation_id = buttons[0]["value"]
    bot = client.app.state.components.bot
    post_ts = bot.queue.get(escalation_id).link("slack").split(":", 1)[1]
    posted = {"type": "message", "ts": post_ts, "text": post["text"], "blocks": post["blocks"], "user": BOT_USER_ID}
    click(client, slack, STAFF, buttons[0]["action_id"], escalation_id, SUPPORT, posted, "claim7")
    until(lambda: any(e["action"] == "escalation.claim" for e in audit(client)))

    # The staff reply, then Slack's retry of the very same event while the first may still be handled, and again.
    ts = f"{time.time():.6f}"
    reply = {"type": "message", "channel": SUPPORT, "channel_type": "channel", "user": STAFF, "text": STAFF_WORDS,
             "ts": ts, "thread_ts": post_ts}
    assert post_event(client, reply, event_id="EvStaffReply7").status_code == 200
    for attempt in ("1", "2"):
        retried = post_event(client, reply, event_id="EvStaffReply7",
                             headers={"X-Slack-Retry-Num": attempt, "X-Slack-Retry-Reason": "http_timeout"})
        assert retried.status_code == 200
    slack.wait_for("chat.postMessage", to(customer, STAFF_WORDS))
    # Both retries were seen and turned away (the log says so), so a second copy could only be there now.
    until(lambda: sum("delivered again; already taken" in r.getMessage() for r in caplog.records) == 2)
    assert len(slack.find("chat.postMessage", to(customer, STAFF_WORDS))) == 1
    assert [e["text"] for e in bot.transcript(escalation_id) if e["role"] == "agent"] == [STAFF_WORDS]

    # A new message in the thread is a new event: it goes through.
    later = {**reply, "ts": f"{time.time():.6f}", "text": "Anything else?"}
    assert post_event(client, later).status_code == 200
    slack.wait_for("chat.postMessage", to(customer, "Anything else?"))

    resolve = next(b for b in buttons if b["action_id"].startswith("frontdesk_resolve"))
    click(client, slack, STAFF, resolve["action_id"], escalation_id, SUPPORT, posted, "resolve7")
    until(lambda: any(e["action"] == "escalation.resolve" for e in audit(client)))
    entries = audit(client)
    actor = f"Sam Staff (slack:{STAFF})"
    assert [(e["actor"], e["action"], e["target"]) for e in entries][::-1] == [
        (actor, "escalation.claim", escalation_id), (actor, "escalation.reply", escalation_id),
        (actor, "escalation.reply", escalation_id), (actor, "escalation.resolve", escalation_id)]
    shown = json.dumps(entries)
    assert STAFF_WORDS not in shown and "Anything else" not in shown and CUSTOMER not in shown


def audit(client) -> list[dict]:
    return client.get("/admin/audit", headers=ADMIN).json()
