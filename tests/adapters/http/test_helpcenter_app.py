"""A team's own help center served with the demo model, through the real app: cited answers, hand-offs intact."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from adapters.http.app import create_app
from adapters.runtime.settings import Settings
from tests.knowledge.test_knowledge_articles import write_kb
from tests.support.fleet import until
from tests.support.rest import CHAT_TOKEN
from tests.support.serverutil import wait_until_serving

TOKEN = "helpcenter-token-0123456789abcdef01234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(demo_model, redis_server, tmp_path_factory):
    # Articles only: no FAQ entry, so nothing links the demo model's intents to this knowledge base.
    kb = write_kb(tmp_path_factory.mktemp("helpcenter"), faq=False)
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX="helpcenter-app", FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,  # AUTH (the admin token) is accepted at /chat too
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_DEVICE="cpu", FRONTDESK_KB=kb,
                        FRONTDESK_ARTICLES_BASE_URL="https://help.example.com/docs")
    with TestClient(create_app(settings)) as test_client:
        wait_until_serving(test_client)
        yield test_client


def chat(client, text: str, sender: str) -> list[dict]:
    response = client.post("/chat", json={"sender": sender, "message": text}, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()["replies"]


def test_an_articles_only_knowledge_base_answers_under_a_model_of_another_domain(client):
    # The demo model knows a home-goods store's intents, none of them linked here: it must not veto the article.
    replies = chat(client, "what temperature should I wash my linen duvet cover at", "reader-1")
    answer = next(r for r in replies if r.get("source"))
    assert answer["source"] == {"kind": "article", "id": "care/linen", "title": "Washing linen bedding",
                                "section": "Washing temperature",
                                "url": "https://help.larkspur.example/care/linen#washing-temperature"}
    assert "40 degrees" in answer["text"]
    oak = next(r for r in chat(client, "how often should i oil my oak dining table", "reader-2") if r.get("source"))
    assert oak["source"]["url"] == "https://help.example.com/docs/care/oak-furniture#oiling"  # the base URL + path

    status = client.get("/admin/faq", headers=AUTH).json()
    assert status["contents"] == {"faq_entries": 0, "articles": 3, "sections": 7, "passages": 7}
    assert status["calibration"] == status["thresholds"]["method"]


def test_hand_offs_still_work_on_a_help_center(client):
    replies = chat(client, "/human", "reader-3")
    assert replies and "colleague" in replies[0]["text"]
    queue = client.get("/admin/escalations", headers=AUTH).json()
    assert any(item["user_id"] == "reader-3" and item["reason"] == "asked_for_human" for item in queue)


def test_the_transcript_keeps_the_citation_beside_the_answer(client):
    chat(client, "which bulb does the ayla pendant take", "reader-4")
    chat(client, "/human", "reader-4")
    item = next(i for i in client.get("/admin/escalations", headers=AUTH).json() if i["user_id"] == "reader-4")
    transcript = client.get(f"/admin/escalations/{item['id']}", headers=AUTH).json()["transcript"]
    cited = [e for e in transcript if e["role"] == "bot" and e.get("source")]
    assert cited and cited[0]["source"]["id"] == "assembly/ayla-lamp"


def test_a_review_item_labelled_with_an_article_id_is_answered_from_it_after_a_reload(client):
    text = "my sheets feel scratchy and stiff straight out of the machine, did i ruin them"
    chat(client, text, "reader-5")
    item = next(i for i in client.get("/admin/review", headers=AUTH).json() if i["text"] == text)
    unknown = client.post(f"/admin/review/{item['id']}", json={"faq_id": "care/no-such-article"}, headers=AUTH)
    assert unknown.status_code == 422 and "care/no-such-article" in unknown.text
    labelled = client.post(f"/admin/review/{item['id']}", json={"faq_id": "care/linen"}, headers=AUTH)
    assert labelled.status_code == 200, labelled.text
    assert client.post("/admin/faq/reload", headers=AUTH).status_code == 200
    again = [r for r in chat(client, text, "reader-6") if r.get("source")]
    assert again and again[0]["source"]["id"] == "care/linen"


def test_the_bot_speaks_in_the_knowledge_folders_wording_and_only_there(client):
    kb = client.app.state.components.settings.kb
    wording = kb / "templates.yaml"
    greeting = chat(client, "hello", "reader-7")[0]["text"]
    assert "assistant" in greeting and "Larkspur" not in greeting  # the defaults name no company
    try:
        wording.write_text('greet: "Welcome to Acme help, {name}! Ask about your Acme lamp or linen."\n')
        assert client.post("/admin/faq/reload", headers=AUTH).status_code == 200
        assert chat(client, "hello", "reader-8")[0]["text"].startswith("Welcome to Acme help")

        wording.write_text("greet:\n  - [Welcome]\n")  # not a text: the reload is refused, nothing changes
        refused = client.post("/admin/faq/reload", headers=AUTH)
        assert refused.status_code == 422
        assert [(e["file"], e["line"]) for e in refused.json()["errors"]] == [(str(wording), 1)]
        assert "greet: a list of texts" in refused.json()["errors"][0]["message"]
        assert chat(client, "hello", "reader-9")[0]["text"].startswith("Welcome to Acme help")

        wording.write_text('greet: "Hi from Acme"\nescalated: "one text for every reason"\n')  # YAML fine, bot not
        assert client.post("/admin/faq/reload", headers=AUTH).status_code == 200
        until(lambda: client.get("/readyz").status_code == 503)  # the readiness monitor's next look
        ready = client.get("/readyz").json()
        assert "wording" in ready["missing"] and "escalated" in ready["errors"]["wording"]
        assert chat(client, "hello", "reader-10")[0]["text"].startswith("Welcome to Acme help")  # the last good
    finally:
        wording.unlink(missing_ok=True)
        assert client.post("/admin/faq/reload", headers=AUTH).status_code == 200
    until(lambda: client.get("/readyz").status_code == 200)
    assert "assistant" in chat(client, "hello", "reader-11")[0]["text"]
