"""`POST /chat` and the staff escalation routes over HTTP, on the real app with real parts.

`/chat` takes FRONTDESK_CHAT_TOKEN or the admin token (adapters/http/api_gate.py); its duplicate
detection is per caller and sender (adapters/channels/rest.py). `frontdesk serve` without the
variable refusing it is shown on a real process in
tests/adapters/runtime/test_serve.py::test_serve_with_embedded_redis_answers_predict.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from adapters.http.app import create_app
from adapters.runtime.settings import Settings
from bot.keys import Keys
from bot.staff import Role, StaffDirectory
from tests.support.paths import REPO_ROOT
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.serverutil import wait_until_serving

pytestmark = pytest.mark.slow

TOKEN = "chat-test-token-0123456789abcdef012345"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(demo_model, redis_server, tmp_path_factory):
    # One server for the module (loading the model and index is the slow part); senders keep tests apart.
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX="chat-api", FRONTDESK_ADMIN_TOKEN=TOKEN, FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu",
                        FRONTDESK_KB=REPO_ROOT / "knowledge" / "demo")
    with TestClient(create_app(settings)) as test_client:
        wait_until_serving(test_client)
        yield test_client


def chat(client, text: str, sender: str = "cust-1", auth: dict = CHAT_AUTH, **extra) -> dict:
    response = client.post("/chat", json={"sender": sender, "message": text, **extra}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_chat_escalation_claim_reply_resolve_over_http(client):
    assert chat(client, "hello")["replies"][0]["text"]
    assert "colleague" in chat(client, "/human")["replies"][0]["text"]
    queue = client.get("/admin/escalations", headers=AUTH).json()
    item = queue[0]
    assert {k: item[k] for k in ("channel", "user_id", "reason", "status")} == {
        "channel": "rest", "user_id": "cust-1", "reason": "asked_for_human", "status": "open"}
    assert item["conversation_id"] and item["created_at"] > 0
    escalation = item["id"]

    assert client.post(f"/admin/escalations/{escalation}/claim", json={"agent": "sam"}, headers=AUTH).status_code == 200
    again = client.post(f"/admin/escalations/{escalation}/claim", json={"agent": "kim"}, headers=AUTH)
    assert again.status_code == 409 and "sam" in again.json()["detail"]
    assert chat(client, "are you there?")["replies"] == []  # staff hold it: nothing from the bot
    sent = client.post(f"/admin/escalations/{escalation}/reply", json={"agent": "sam", "text": "Hi, Sam here."},
                       headers=AUTH)
    assert sent.status_code == 200
    detail = client.get(f"/admin/escalations/{escalation}", headers=AUTH).json()
    assert [e["text"] for e in detail["transcript"] if e["role"] == "agent"] == ["Hi, Sam here."]
    assert "are you there?" in [e["text"] for e in detail["transcript"]]
    resolved = client.post(f"/admin/escalations/{escalation}/resolve", json={"agent": "sam"}, headers=AUTH)
    assert resolved.json()["status"] == "resolved"
    assert chat(client, "thank you!")["replies"]  # the bot is back

    assert client.post("/admin/escalations/nope/claim", json={"agent": "sam"}, headers=AUTH).status_code == 404
    assert client.post(f"/admin/escalations/{escalation}/claim", json={}, headers=AUTH).status_code == 422


def test_chat_retry_with_the_same_message_id_is_answered_once(client):
    first = chat(client, "how much is shipping?", sender="cust-2", message_id="m-1")
    second = chat(client, "how much is shipping?", sender="cust-2", message_id="m-1")
    assert not first["duplicate"] and second["duplicate"]
    assert first["replies"] == second["replies"]


def test_chat_rejects_bad_bodies_with_4xx(client):
    assert client.post("/chat", json={"message": "hi"}, headers=CHAT_AUTH).status_code == 422
    assert client.post("/chat", json={"sender": "", "message": "hi"}, headers=CHAT_AUTH).status_code == 422
    assert client.post("/chat", content=b"not json", headers={"content-type": "application/json", **CHAT_AUTH}
                       ).status_code == 422
    assert client.post("/chat", json={"sender": "x", "message": "a" * 6000}, headers=CHAT_AUTH).status_code == 422
    assert client.get("/admin/escalations").status_code == 401


# ---------------------------------------------------------------------- who may call /chat
WRONG_TOKENS = {"no header": None, "a wrong token": "Bearer not-the-token-0123456789abcdef0123",
                "the token plus a character": f"Bearer {CHAT_TOKEN}x", "a prefix of it": f"Bearer {CHAT_TOKEN[:-1]}",
                "scheme only": "Bearer", "no scheme": CHAT_TOKEN, "Basic scheme": f"Basic {CHAT_TOKEN}",
                "Token scheme": f"Token {CHAT_TOKEN}"}


def refused(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer" and "FRONTDESK_CHAT_TOKEN" in response.json()["detail"]


def test_chat_needs_the_channel_token_or_the_admin_token_whatever_the_body(client):
    components = client.app.state.components
    _, staff_token = StaffDirectory(components.redis, Keys(components.settings.redis_prefix)).add(
        "chat-agent", Role.ADMIN)
    wrong = {**WRONG_TOKENS, "a staff admin's token": f"Bearer {staff_token}"}
    for header in wrong.values():
        headers = {"Authorization": header} if header else {}
        refused(client.post("/chat", json={"sender": "intruder", "message": "/human"}, headers=headers))
        # Refused before the body is read: junk, or a body the route would reject, is still a 401, not a 422.
        refused(client.post("/chat", content=b"{not json", headers={"content-type": "application/json", **headers}))
        refused(client.post("/chat", json={"sender": ""}, headers=headers))
    queue = client.get("/admin/escalations", headers=AUTH).json()
    assert not [e for e in queue if e["user_id"] == "intruder"]  # nothing got through to the bot
    assert chat(client, "hello", sender="by-token")["replies"]
    assert chat(client, "hello", sender="by-admin", auth=AUTH)["replies"]


def test_without_the_channel_token_set_chat_is_refused_naming_it(tmp_path):
    # The gate decides from the settings alone: no lifespan needed. The admin token does not open it either.
    bare = TestClient(create_app(Settings(FRONTDESK_HOME=tmp_path, FRONTDESK_ADMIN_TOKEN=TOKEN)))
    for headers in ({}, AUTH, CHAT_AUTH):
        response = bare.post("/chat", json={"sender": "a", "message": "hi"}, headers=headers)
        refused(response)
        assert "is not set" in response.json()["detail"]


def test_a_replayed_message_id_from_another_caller_or_sender_reveals_nothing(client):
    first = chat(client, "how much is shipping?", sender="victim-1", message_id="known-id")
    answer = [r["text"] for r in first["replies"]]
    assert answer and not first["duplicate"]
    # Another credential, same sender and id; the same credential, another sender: new messages of their own.
    by_admin = chat(client, "hello", sender="victim-1", message_id="known-id", auth=AUTH)
    other_sender = chat(client, "hello", sender="attacker-1", message_id="known-id")
    for replay in (by_admin, other_sender):
        assert not replay["duplicate"]
        assert not set(answer) & {r["text"] for r in replay["replies"]}, replay
    # The caller that sent it still gets its own retry answered once, with its replies.
    again = chat(client, "how much is shipping?", sender="victim-1", message_id="known-id")
    assert again["duplicate"] and [r["text"] for r in again["replies"]] == answer
