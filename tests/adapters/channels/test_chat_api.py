"""`POST /chat` and the staff escalation routes over HTTP, on the real app with real parts."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from adapters.http.app import create_app
from adapters.runtime.settings import Settings
from tests.support.paths import REPO_ROOT
from tests.support.serverutil import wait_until_serving

pytestmark = pytest.mark.slow

TOKEN = "chat-test-token-0123456789abcdef012345"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(demo_model, redis_server, tmp_path_factory):
    # One server for the module (loading the model and index is the slow part); senders keep tests apart.
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX="chat-api", FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu",
                        FRONTDESK_KB=REPO_ROOT / "knowledge" / "demo")
    with TestClient(create_app(settings)) as test_client:
        wait_until_serving(test_client)
        yield test_client


def chat(client, text: str, sender: str = "cust-1", **extra) -> dict:
    response = client.post("/chat", json={"sender": sender, "message": text, **extra})
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
    assert client.post("/chat", json={"message": "hi"}).status_code == 422
    assert client.post("/chat", json={"sender": "", "message": "hi"}).status_code == 422
    assert client.post("/chat", content=b"not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/chat", json={"sender": "x", "message": "a" * 6000}).status_code == 422
    assert client.get("/admin/escalations").status_code == 401
