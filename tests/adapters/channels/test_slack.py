"""The Slack channel end to end: signed requests into the real app, slack-bolt and slack_sdk talking to a stand-in.

Requests into the app are signed exactly as Slack signs them; everything the app says to
Slack goes over HTTP to `tests/support/standins/slack_api.py`. The app acknowledges first and
works afterwards, so tests wait for the stand-in to record the posts they expect.
"""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from slack_sdk.signature import SignatureVerifier

from adapters.channels.slack import format as fmt
from adapters.http.app import create_app
from adapters.runtime.components import Components
from adapters.runtime.settings import Settings
from bot.messages import Reply
from tests.support.paths import REPO_ROOT
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.standins.slack_api import APP_TOKEN, BOT_TOKEN, BOT_USER_ID, TEAM_ID, SlackStandIn

SECRET = "slack-test-signing-secret"
ADMIN_TOKEN = "slack-test-admin-token-0123456789abcdef"
SUPPORT = "CSUPPORT"
STAFF, OTHER_STAFF, ADMIN = "USTAFF1", "USTAFF2", "UADMIN1"
DEMO_KB = REPO_ROOT / "knowledge" / "demo"


@pytest.fixture(scope="module")
def slack():
    with SlackStandIn(users={STAFF: "Sam Staff", OTHER_STAFF: "Kim Staff", ADMIN: "Ada Admin",
                             "UCUST1": "Casey"}) as standin:
        yield standin


def wait_until_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 180
    while client.get("/readyz").status_code != 200 or client.app.state.components.bot is None:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def client(tiny_model, demo_kb, redis_server, slack, tmp_path_factory):
    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"slack-{uuid.uuid4().hex[:6]}", FRONTDESK_ADMIN_TOKEN=ADMIN_TOKEN,
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN, FRONTDESK_HOME=tmp_path_factory.mktemp("home"),
                        FRONTDESK_DEVICE="cpu",
                        FRONTDESK_KB=DEMO_KB, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET,
                        SLACK_SUPPORT_CHANNEL=SUPPORT, SLACK_ADMIN_USERS=f" {ADMIN} ,UOTHERADMIN",
                        SLACK_API_URL=slack.api_url)
    with TestClient(create_app(settings, Components(settings, kb=demo_kb))) as test_client:
        wait_until_ready(test_client)
        yield test_client


# ---------------------------------------------------------------------- signing and payloads, as Slack does them
def signed_headers(body: str, content_type: str, secret: str = SECRET, timestamp: int | None = None) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def post_event(client: TestClient, event: dict, event_id: str | None = None, headers: dict | None = None, **sign):
    body = json.dumps({"token": "legacy", "team_id": TEAM_ID, "api_app_id": "ASTANDIN", "type": "event_callback",
                       "event": event, "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
                       "event_time": int(time.time()),
                       "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True,
                                           "is_enterprise_install": False}]})
    started = time.monotonic()
    response = client.post("/slack/events", content=body,
                           headers={**signed_headers(body, "application/json", **sign), **(headers or {})})
    response.elapsed_s = time.monotonic() - started
    return response


def dm(channel: str, user: str, text: str, ts: str | None = None) -> dict:
    ts = ts or f"{time.time():.6f}"
    return {"type": "message", "channel": channel, "channel_type": "im", "user": user, "text": text, "ts": ts,
            "event_ts": ts, "client_msg_id": str(uuid.uuid4()), "team": TEAM_ID}


def post_form(client: TestClient, path: str, fields: dict, **sign):
    body = urlencode(fields)
    return client.post(path, content=body, headers=signed_headers(body, "application/x-www-form-urlencoded", **sign))


def click(client: TestClient, slack: SlackStandIn, user: str, action_id: str, value: str, channel: str,
          message: dict, name: str) -> None:
    payload = {"type": "block_actions", "team": {"id": TEAM_ID}, "api_app_id": "ASTANDIN",
               "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
               "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel,
                             "is_ephemeral": False, **({"thread_ts": message["thread_ts"]}
                                                       if message.get("thread_ts") else {})},
               "trigger_id": f"{uuid.uuid4().int}", "channel": {"id": channel, "name": "x"}, "message": message,
               "response_url": slack.response_url(name),
               "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value,
                            "text": {"type": "plain_text", "text": "x"}, "action_ts": f"{time.time():.6f}"}]}
    response = post_form(client, "/slack/interactions", {"payload": json.dumps(payload)})
    assert response.status_code == 200, response.text


def slash(client: TestClient, slack: SlackStandIn, user: str, text: str, name: str):
    return post_form(client, "/slack/commands", {
        "token": "legacy", "team_id": TEAM_ID, "channel_id": "CGENERAL", "channel_name": "general",
        "user_id": user, "user_name": user.lower(), "command": "/frontdesk", "text": text,
        "api_app_id": "ASTANDIN", "response_url": slack.response_url(name), "trigger_id": f"{uuid.uuid4().int}"})


def posts_to(slack: SlackStandIn, channel: str, count: int = 1, **match) -> list[dict]:
    return slack.wait_for("chat.postMessage", lambda a: a.get("channel") == channel
                          and all(a.get(k) == v for k, v in match.items()), count=count)


def admin_escalation(client: TestClient, escalation_id: str) -> dict:
    items = client.get("/admin/escalations", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    return next(item for item in items if item["id"] == escalation_id)


def support_post_for(slack: SlackStandIn, user: str) -> dict:
    """The escalation post (not a thread reply) about `user`'s conversation."""
    return slack.wait_for("chat.postMessage", lambda a: a.get("channel") == SUPPORT and not a.get("thread_ts")
                          and f"customer {user}" in a.get("text", ""))[0]


# ---------------------------------------------------------------------- tests
def test_url_verification_handshake(client, slack):
    body = json.dumps({"token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"})
    response = client.post("/slack/events", content=body, headers=signed_headers(body, "application/json"))
    assert response.status_code == 200
    assert response.json()["challenge"] == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    unsigned = client.post("/slack/events", content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401


def test_direct_message_is_answered_in_the_dm(client, slack):
    response = post_event(client, dm("DCUST1", "UCUST1", "hello"))
    assert response.status_code == 200 and response.elapsed_s < 3
    post = posts_to(slack, "DCUST1")[0]
    assert post["text"] and not post.get("thread_ts")
    first = client.app.state.components.bot.history("slack", "DCUST1")[0]
    assert (first["role"], first["text"], first["user_id"]) == ("customer", "hello", "UCUST1")


def test_mention_is_answered_in_its_thread_without_the_mention(client, slack):
    ts = f"{time.time():.6f}"
    event = {"type": "app_mention", "channel": "CPUBLIC1", "user": "UCUST2", "ts": ts, "event_ts": ts,
             "text": f"<@{BOT_USER_ID}> how much is shipping?", "team": TEAM_ID}
    assert post_event(client, event).status_code == 200
    post = posts_to(slack, "CPUBLIC1")[0]
    assert post["thread_ts"] == ts and post["text"]
    history = client.app.state.components.bot.history("slack", f"CPUBLIC1:{ts}")
    assert history[0]["text"] == "how much is shipping?"
    # A mention inside an existing thread is answered in that thread.
    later = f"{time.time():.6f}"
    reply = {**event, "ts": later, "event_ts": later, "thread_ts": ts, "text": f"<@{BOT_USER_ID}> thanks!"}
    assert post_event(client, reply).status_code == 200
    assert all(p["thread_ts"] == ts for p in posts_to(slack, "CPUBLIC1", count=2))


def test_unsigned_badly_signed_and_stale_requests_are_refused(client, slack):
    channel = "DREJECT1"
    body = json.dumps({"type": "event_callback", "team_id": TEAM_ID, "event_id": "EvReject",
                       "event": dm(channel, "UCUST3", "hello")})
    assert client.post("/slack/events", content=body, headers={"Content-Type": "application/json"}).status_code == 401
    bad = signed_headers(body, "application/json", secret="not-the-secret")
    assert client.post("/slack/events", content=body, headers=bad).status_code == 401
    stale = signed_headers(body, "application/json", timestamp=int(time.time()) - 6 * 60)
    assert client.post("/slack/events", content=body, headers=stale).status_code == 401
    tampered = signed_headers(body, "application/json")
    assert client.post("/slack/events", content=body.replace("hello", "hullo"), headers=tampered).status_code == 401
    junk_stamp = {**signed_headers(body, "application/json"), "X-Slack-Request-Timestamp": "soon"}
    assert client.post("/slack/events", content=body, headers=junk_stamp).status_code == 401
    unsigned_junk = client.post("/slack/events", content=b"{not json", headers={"Content-Type": "application/json"})
    assert unsigned_junk.status_code == 401
    # Malformed but signed: a 4xx saying so, never a 500.
    for junk in ("{not json", "[1, 2]", "payload=%7Bnope"):
        response = client.post("/slack/events", content=junk, headers=signed_headers(junk, "application/json"))
        assert response.status_code == 400, (junk, response.text)
    # Nothing was processed: a signed message sent afterwards is answered, the refused ones never were.
    assert post_event(client, dm("DSENTINEL1", "UCUST3", "hello")).status_code == 200
    posts_to(slack, "DSENTINEL1")
    assert slack.find("chat.postMessage", lambda a: a.get("channel") == channel) == []
    assert client.app.state.components.bot.history("slack", channel) == []


def test_a_retried_event_is_answered_once(client, slack):
    event = dm("DRETRY1", "UCUST4", "hello")
    first = post_event(client, event, event_id="EvRetry1")
    # Slack's retry arrives while the first delivery may still be processing, and again later.
    retry = post_event(client, event, event_id="EvRetry1",
                       headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert first.status_code == retry.status_code == 200
    posts_to(slack, "DRETRY1")
    again = post_event(client, event, event_id="EvRetry1",
                       headers={"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout"})
    assert again.status_code == 200
    assert post_event(client, dm("DRETRY1", "UCUST4", "thanks")).status_code == 200
    posts_to(slack, "DRETRY1", count=2)
    time.sleep(1.0)  # any late duplicate would have been posted by now
    assert len(slack.find("chat.postMessage", lambda a: a.get("channel") == "DRETRY1")) == 2
    customer_lines = [e for e in client.app.state.components.bot.history("slack", "DRETRY1") if e["role"] == "customer"]
    assert [e["text"] for e in customer_lines] == ["hello", "thanks"]


def test_escalation_claim_staff_reply_and_resolve(client, slack):
    customer, user = "DESC1", "UCUST5"
    assert post_event(client, dm(customer, user, "/human")).status_code == 200
    assert "colleague" in posts_to(slack, customer)[0]["text"]

    post = support_post_for(slack, user)
    actions = next(b for b in post["blocks"] if b["type"] == "actions")["elements"]
    assert [a["text"]["text"] for a in actions] == ["Claim", "Resolve"]
    escalation_id = actions[0]["value"]
    assert actions[0]["action_id"] == f"frontdesk_claim:{escalation_id}"
    assert "Asked for a person" in json.dumps(post["blocks"]) and "/human" in json.dumps(post["blocks"])
    bot = client.app.state.components.bot
    post_ts = bot.queue.get(escalation_id).link("slack").split(":", 1)[1]
    assert bot.queue.find_by_link("slack", f"{SUPPORT}:{post_ts}").id == escalation_id
    posted = {"type": "message", "ts": post_ts, "text": post["text"], "blocks": post["blocks"], "user": BOT_USER_ID}
    bot.reannounce_unclaimed(0)  # nobody claimed it yet: a reminder in its thread, shown in the channel too
    reminder = slack.wait_for("chat.postMessage", lambda a: a.get("thread_ts") == post_ts)[0]
    assert reminder["reply_broadcast"] is True and escalation_id in reminder["text"]

    click(client, slack, STAFF, actions[0]["action_id"], escalation_id, SUPPORT, posted, "claim1")
    updated = slack.wait_for("chat.update", lambda a: a.get("ts") == post_ts)[0]
    assert "Claimed by Sam Staff" in updated["text"]
    buttons = next(b for b in updated["blocks"] if b["type"] == "actions")["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Resolve"]
    assert admin_escalation(client, escalation_id)["status"] == "claimed"
    assert "Sam Staff from our support team has joined" in posts_to(slack, customer, count=2)[1]["text"]

    # A second claim is refused with a message only the clicker sees.
    click(client, slack, OTHER_STAFF, actions[0]["action_id"], escalation_id, SUPPORT, posted, "claim2")
    refusal = slack.wait_for("response_url", lambda a: a["name"] == "claim2")[0]
    assert refusal["response_type"] == "ephemeral" and "Sam Staff" in refusal["text"]

    # The customer writes; staff see it in the thread. Staff answer in the thread; the customer gets it.
    assert post_event(client, dm(customer, user, "are you there?")).status_code == 200
    relay = slack.wait_for("chat.postMessage", lambda a: a.get("thread_ts") == post_ts, count=2)[1]
    assert relay["channel"] == SUPPORT and "are you there?" in relay["text"]
    staff_ts = f"{time.time():.6f}"
    staff_message = {"type": "message", "channel": SUPPORT, "channel_type": "channel", "user": STAFF,
                     "text": "Hi, Sam here &amp; I can help &lt;now&gt;", "ts": staff_ts, "thread_ts": post_ts}
    assert post_event(client, staff_message).status_code == 200
    answer = posts_to(slack, customer, count=3)[2]
    assert answer["text"] == "*Sam Staff* (support team): Hi, Sam here &amp; I can help &lt;now&gt;"
    assert [e["text"] for e in bot.transcript(escalation_id) if e["role"] == "agent"] == [
        "Hi, Sam here & I can help <now>"]

    resolve = next(b for b in buttons if b["action_id"].startswith("frontdesk_resolve"))
    click(client, slack, STAFF, resolve["action_id"], escalation_id, SUPPORT, posted, "resolve1")
    final = slack.wait_for("chat.update", lambda a: a.get("ts") == post_ts, count=2)[1]
    assert "Resolved by Sam Staff" in final["text"] and not any(b["type"] == "actions" for b in final["blocks"])
    assert admin_escalation(client, escalation_id)["status"] == "resolved"
    handed_back, rating = posts_to(slack, customer, count=5)[3:5]
    assert "handed you back" in handed_back["text"]
    assert "How did we do" in rating["text"] and "frontdesk_suggest" in str(rating.get("blocks"))  # 1-5 buttons

    # Too late: a reply after resolving does not reach the customer; the staff member is told.
    late = {**staff_message, "ts": f"{time.time():.6f}", "text": "one more thing"}
    assert post_event(client, late).status_code == 200
    notice = slack.wait_for("chat.postEphemeral", lambda a: a.get("user") == STAFF)[0]
    assert "resolved" in notice["text"] and notice["thread_ts"] == post_ts
    assert len(slack.find("chat.postMessage", lambda a: a.get("channel") == customer)) == 5


def test_user_text_is_escaped_for_mrkdwn(client, slack):
    # Slack sends what the customer typed escaped; the core sees the raw text; every post escapes it once.
    customer, user = "DESCAPE1", "UCUST6"
    assert post_event(client, dm(customer, user, "&lt;!channel&gt; &amp; &lt;script&gt;")).status_code == 200
    posts_to(slack, customer)
    bot = client.app.state.components.bot
    assert bot.history("slack", customer)[0]["text"] == "<!channel> & <script>"
    assert post_event(client, dm(customer, user, "/human")).status_code == 200
    post = support_post_for(slack, user)
    shown = json.dumps(post["blocks"])
    assert "&lt;!channel&gt; &amp; &lt;script&gt;" in shown
    assert "<!channel>" not in shown and "<script>" not in shown and "&amp;lt;" not in shown
    # The same from another channel (REST), and a staff reply quoting it back to a Slack customer.
    assert client.post("/chat", json={"sender": "rest-esc", "message": "<!here> <b>"},
                       headers=CHAT_AUTH).status_code == 200
    client.post("/chat", json={"sender": "rest-esc", "message": "/human"}, headers=CHAT_AUTH)
    rest_post = support_post_for(slack, "rest-esc")
    assert "&lt;!here&gt; &lt;b&gt;" in json.dumps(rest_post["blocks"]) and "<!here>" not in json.dumps(rest_post)
    escalation_id = next(b for b in post["blocks"] if b["type"] == "actions")["elements"][0]["value"]
    bot.agent_reply(escalation_id, "Sam <Staff>", "You wrote <!channel> & <script>")
    joined, quoted = (p["text"] for p in posts_to(slack, customer, count=4)[2:])  # replying claims it first
    assert joined.startswith("Sam &lt;Staff&gt; from our support team")
    assert quoted == "*Sam &lt;Staff&gt;* (support team): You wrote &lt;!channel&gt; &amp; &lt;script&gt;"


def test_slash_command_is_for_admins_only(client, slack):
    refused = slash(client, slack, "UCUST7", "queue", "cmd-refused")
    assert refused.status_code == 200
    assert "administrators only" in slack.wait_for("response_url", lambda a: a["name"] == "cmd-refused")[0]["text"]
    assert slash(client, slack, ADMIN, "queue", "cmd-queue").status_code == 200
    listing = slack.wait_for("response_url", lambda a: a["name"] == "cmd-queue")[0]
    assert listing["response_type"] == "ephemeral"
    assert listing["text"].startswith(("Escalations:", "The escalation queue is empty"))
    assert slash(client, slack, ADMIN, "reload", "cmd-reload").status_code == 200
    assert "Knowledge base reloaded" in slack.wait_for("response_url", lambda a: a["name"] == "cmd-reload",
                                                       timeout=60)[0]["text"]
    assert slash(client, slack, ADMIN, "", "cmd-usage").status_code == 200
    assert "Usage" in slack.wait_for("response_url", lambda a: a["name"] == "cmd-usage")[0]["text"]
    # Each command tried is in the audit log: the refused customer by pseudonym only, the admin by name and id.
    audit = client.app.state.components.bot.audit
    tried = [(e["actor"], e["action"]) for e in reversed(audit.entries()) if e["target"] == "slack chat"]
    assert tried[-3:] == [(audit.pseudonym("slack", "UCUST7"), "escalation.list.refused"),
                          (f"{ADMIN.lower()} (slack:{ADMIN})", "escalation.list"),
                          (f"{ADMIN.lower()} (slack:{ADMIN})", "faq.reload")]
    assert "UCUST7" not in str(audit.entries())


def test_suggestions_are_buttons_and_a_click_is_the_customers_message(client, slack):
    adapter = client.app.state.components.channels.outputs["slack"]
    adapter.send("DSUGGEST1", Reply("Which one fits?", suggestions=("Talk to a person", "How do returns work?")))
    shown = posts_to(slack, "DSUGGEST1")[0]
    buttons = shown["blocks"][1]["elements"]
    assert [(b["text"]["text"], b["value"]) for b in buttons] == [
        ("Talk to a person", "Talk to a person"), ("How do returns work?", "How do returns work?")]
    message = {"type": "message", "ts": "1700000000.000100", "text": shown["text"], "blocks": shown["blocks"]}
    click(client, slack, "UCUST8", buttons[0]["action_id"], "/human", "DSUGGEST1", message, "suggest1")
    assert "colleague" in posts_to(slack, "DSUGGEST1", count=2)[1]["text"]
    replaced = slack.wait_for("response_url", lambda a: a["name"] == "suggest1")[0]
    assert replaced["replace_original"] is True and "You picked" in json.dumps(replaced["blocks"])


def test_own_bot_and_edited_messages_are_ignored(client, slack):
    channel = "DIGNORE1"
    for event in ({**dm(channel, BOT_USER_ID, "my own echo")},
                  {**dm(channel, "UOTHERBOT", "beep"), "bot_id": "BOTHER", "subtype": "bot_message"},
                  {**dm(channel, "UCUST9", "edited"), "subtype": "message_changed"},
                  {**dm(channel, "UCUST9", "joined"), "subtype": "channel_join"}):
        assert post_event(client, event).status_code == 200
    assert post_event(client, dm("DSENTINEL2", "UCUST9", "hello")).status_code == 200
    posts_to(slack, "DSENTINEL2")
    assert slack.find("chat.postMessage", lambda a: a.get("channel") == channel) == []


def test_long_replies_are_split_on_line_boundaries(client, slack):
    paragraphs = [f"Paragraph {i}: " + "lorem ipsum & dolor " * 40 for i in range(12)]
    client.app.state.components.channels.outputs["slack"].send("DLONG1", Reply("\n\n".join(paragraphs)))
    time.sleep(0.2)
    pieces = [p["text"] for p in slack.find("chat.postMessage", lambda a: a.get("channel") == "DLONG1")]
    assert len(pieces) > 1 and all(len(p) <= fmt.SECTION_LIMIT for p in pieces)
    assert all(p.startswith("Paragraph") for p in pieces)
    assert fmt.unescape(" ".join(pieces)).split() == "\n\n".join(paragraphs).split()


def test_split_text_never_cuts_an_entity():
    text = fmt.escape("&" * 5000)
    pieces = fmt.split_text(text, limit=3000)
    assert all(len(p) <= 3000 and p.startswith("&amp;") and p.endswith("&amp;") for p in pieces)
    assert "".join(pieces) == text


def test_routes_say_when_slack_is_not_configured(tmp_path):
    plain = TestClient(create_app(Settings(FRONTDESK_HOME=tmp_path)))
    response = plain.post("/slack/events", content="{}")
    assert response.status_code == 404 and "SLACK_BOT_TOKEN" in response.json()["detail"]
    half = TestClient(create_app(Settings(FRONTDESK_HOME=tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN)))
    response = half.post("/slack/commands", content="")
    assert response.status_code == 503 and "SLACK_SIGNING_SECRET" in response.json()["detail"]


def test_events_get_503_until_the_bot_is_loaded(demo_kb, slack, tmp_path):
    # No Redis and no model: the bot never loads, so Slack is told to deliver again later (after the signature check).
    settings = Settings(FRONTDESK_HOME=tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET,
                        SLACK_API_URL=slack.api_url)
    with TestClient(create_app(settings, Components(settings, kb=demo_kb))) as loading:
        assert post_event(loading, dm("DLOADING1", "UCUST11", "hello")).status_code == 503
        assert post_event(loading, dm("DLOADING1", "UCUST11", "hello"), secret="wrong").status_code == 401
        body = json.dumps({"type": "url_verification", "challenge": "c-1", "token": "legacy"})
        handshake = loading.post("/slack/events", content=body, headers=signed_headers(body, "application/json"))
        assert handshake.status_code == 200 and handshake.json() == {"challenge": "c-1"}
    assert slack.find("chat.postMessage", lambda a: a.get("channel") == "DLOADING1") == []


def test_socket_mode_receives_events_over_the_websocket(tiny_model, demo_kb, redis_server, slack, tmp_path):
    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"slack-sm-{uuid.uuid4().hex[:6]}", FRONTDESK_HOME=tmp_path,
                        FRONTDESK_DEVICE="cpu", FRONTDESK_KB=DEMO_KB, SLACK_BOT_TOKEN=BOT_TOKEN,
                        SLACK_APP_TOKEN=APP_TOKEN, SLACK_API_URL=slack.api_url)
    with TestClient(create_app(settings, Components(settings, kb=demo_kb))) as socket_client:
        wait_until_ready(socket_client)
        http = socket_client.post("/slack/events", content="{}")
        assert http.status_code == 404 and "Socket Mode" in http.json()["detail"]
        slack.wait_for_socket()
        payload = {"type": "event_callback", "team_id": TEAM_ID, "event_id": "EvSocket1", "event_time": 1,
                   "event": dm("DSOCKET1", "UCUST10", "hello"), "api_app_id": "ASTANDIN"}
        envelope = slack.push_envelope("events_api", payload)
        post = posts_to(slack, "DSOCKET1")[0]
        assert post["text"] and not post.get("thread_ts")
        assert {"envelope_id": envelope} in [{"envelope_id": a.get("envelope_id")} for a in slack.socket_acks]
        slack.push_envelope("events_api", payload, retry_attempt=1)  # redelivered: still one answer
        time.sleep(1.0)
        assert len(slack.find("chat.postMessage", lambda a: a.get("channel") == "DSOCKET1")) == 1
    assert slack.find("apps.connections.open")
