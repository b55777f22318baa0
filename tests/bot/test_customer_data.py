"""Customers' data rights over the real HTTP routes and a real Redis, with data made by real messages.

Two customers talk to the bot over POST /chat (each types an e-mail address and words nobody else
uses), are handed to staff and answered; staff label their texts in the review inbox (an admin's
FAQ label, an agent's proposal, and an alternate written by the version before owners were kept).
The export holds her messages and labels; after the erasure a SCAN of every key on the Redis
server, and of every value (strings, hashes, lists, sets, sorted sets, streams), finds neither her
id, her address nor any of her words, the FAQ served no longer holds them, and the other customer's
data is exactly as before. An erasure cut short after the statistics (a step Redis refuses) and run
again takes each unanswered question off once. Retention: a resolved escalation expires after
FRONTDESK_ESCALATION_RETENTION_DAYS and leaves the list with it.
"""

from __future__ import annotations

import json
import uuid

import pytest
import redis
import yaml

from bot.keys import Keys
from tests.support.fleet import until
from tests.support.redis_search import every_key_and_value, naming

TOKEN = "data-rights-admin-0123456789abcdef0123"
CHAT_TOKEN = "data-rights-chat-0123456789abcdef01234"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ALICE, ALICE_EMAIL = "alice-7731", "alice.w7731@example.org"
BOB, BOB_EMAIL = "bob-2208", "bob.k2208@example.net"
ALICE_WORDS = ("zorbly quenflax", "wibbleton", "quimbleworth")  # words only she ever typed
BOB_WORDS = ("frazzleplonk", "gribbleton", "snorkeldash")
ENTRIES = [{"id": "hours", "question": "When are you open?", "answer": "Nine to five, Monday to Friday."},
           {"id": "parcel", "question": "Where is my parcel?", "answer": "Tracking is in your confirmation e-mail."}]


@pytest.fixture(scope="module")
def client(demo_model, embedder, redis_server, tmp_path_factory):
    """The real app over a two-entry FAQ of its own: erasure reloads it, so it must not be the session's."""
    from fastapi.testclient import TestClient

    from adapters.http.app import create_app
    from adapters.runtime.components import Components
    from adapters.runtime.settings import Settings
    from knowledge.service import KnowledgeBase
    from nlu.engine import load_engine

    folder = tmp_path_factory.mktemp("faq")
    (folder / "faq.yaml").write_text(yaml.safe_dump(ENTRIES))
    kb = KnowledgeBase(folder / "faq.yaml", embedder=embedder)
    assert kb.reload().ok
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"rights-{uuid.uuid4().hex[:8]}", FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN, FRONTDESK_DEVICE="cpu", FRONTDESK_IP_RATE_LIMIT="0/60",
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_ESCALATION_RETENTION_DAYS="2")
    components = Components(settings, engine=load_engine(demo_model, "cpu"), kb=kb)
    with TestClient(create_app(settings, components)) as test_client:
        until(lambda: components.bot is not None, 120)
        yield test_client


def chat(client, sender: str, text: str) -> list[str]:
    response = client.post("/chat", json={"sender": sender, "message": text},
                           headers={"Authorization": f"Bearer {CHAT_TOKEN}"})
    assert response.status_code == 200, response.text
    return [r["text"] for r in response.json()["replies"]]


def talk(client, sender: str, email: str, words: tuple[str, str, str]) -> str:
    """Questions the bot cannot answer (statistics and the review inbox keep them), a hand-off and a staff reply."""
    chat(client, sender, "hello")
    chat(client, sender, f"do you stock the {words[0]} in {words[1]} blue? mail {email}")
    chat(client, sender, f"does the {words[2]} lamp come with a plug? write to {email}")
    chat(client, sender, "/human")
    [escalation] = [e["id"] for e in client.get("/admin/escalations", headers=ADMIN).json() if e["user_id"] == sender]
    assert client.post(f"/admin/escalations/{escalation}/reply", json={"agent": "sam", "text": "Sam here."},
                       headers=ADMIN).status_code == 200
    return escalation


def export(client, user_id: str) -> dict:
    response = client.get(f"/admin/customers/rest/{user_id}/export", headers=ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    body.pop("exported_at")
    for conversation in body["conversations"]:
        conversation.pop("pending")  # whether the sweeper has cleared its marker yet: timing, not data
    return body


def review_items(client, user_id: str) -> list[dict]:
    return [i for i in client.get("/admin/review", headers=ADMIN).json() if i["user_id"] == user_id]


def agent_token(client, name: str) -> dict:
    from bot.staff import Role, StaffDirectory

    components = client.app.state.components
    _, token = StaffDirectory(components.redis, Keys(components.settings.redis_prefix)).add(name, Role.AGENT)
    return {"Authorization": f"Bearer {token}"}


def served_alternates(client) -> set[str]:
    return {a for entry in client.app.state.components.kb.index.entries for a in entry.alternates}


def test_export_holds_the_customers_data_and_erasure_leaves_no_trace_of_them_only(client):
    components = client.app.state.components
    redis_client, keys = components.redis, Keys(components.settings.redis_prefix)
    alice_escalation = talk(client, ALICE, ALICE_EMAIL, ALICE_WORDS)
    bob_escalation = talk(client, BOB, BOB_EMAIL, BOB_WORDS)
    # Staff label their texts: an admin's FAQ label (added), an agent's (a proposal), and for Alice an alternate
    # the version before owners were kept wrote (found by her words).
    alice_items = {i["text"]: i for i in review_items(client, ALICE)}
    nonsense = next(i for t, i in alice_items.items() if ALICE_WORDS[1] in t)
    parcel = next(i for t, i in alice_items.items() if ALICE_WORDS[2] in t)
    bob_item = next(i for i in review_items(client, BOB) if BOB_WORDS[1] in i["text"])
    assert client.post(f"/admin/review/{nonsense['id']}", json={"faq_id": "hours"}, headers=ADMIN).status_code == 200
    assert client.post(f"/admin/review/{bob_item['id']}", json={"faq_id": "hours"}, headers=ADMIN).status_code == 200
    proposed = client.post(f"/admin/review/{parcel['id']}", json={"faq_id": "parcel"},
                           headers=agent_token(client, "kim"))
    assert proposed.status_code == 200 and proposed.json()["changed"][0]["faq_proposal"]
    redis_client.hset(keys.review("faq-alternates"), "parcel", json.dumps([parcel["text"]]))
    assert client.post("/admin/faq/reload", headers=ADMIN).status_code == 200
    assert {nonsense["text"], parcel["text"], bob_item["text"]} <= served_alternates(client)

    data = export(client, ALICE)
    [conversation] = data["conversations"]
    said = [e["text"] for e in conversation["transcript"] if e["role"] == "customer"]
    assert said[0] == "hello" and f"does the {ALICE_WORDS[2]} lamp come with a plug? write to {ALICE_EMAIL}" in said
    assert "Sam here." in [e["text"] for e in conversation["transcript"]]
    assert conversation["meta"]["user_id"] == ALICE and not conversation["shared"]
    assert [e["id"] for e in data["escalations"]] == [alice_escalation]
    assert data["rate_limit"]  # the rate-limit window counting her messages
    assert [p["item_id"] for p in data["faq_proposals"]] == [parcel["id"]]
    assert {(a["faq_id"], a["text"]) for a in data["faq_alternates"]} == {("hours", nonsense["text"]),
                                                                          ("parcel", parcel["text"])}
    assert data["statistics"]["unanswered_questions"] and data["statistics"]["asked_questions"]
    assert BOB not in str(data) and BOB_EMAIL not in str(data) and BOB_WORDS[1] not in str(data)
    bob_before = export(client, BOB)
    assert naming(every_key_and_value(redis_client), ALICE, ALICE_EMAIL, *ALICE_WORDS)  # there was something

    response = client.delete(f"/admin/customers/rest/{ALICE}", headers=ADMIN)
    assert response.status_code == 200, response.text
    removed = response.json()
    assert removed["conversations"] == [f"rest:{ALICE}"] and removed["escalations"] == [alice_escalation]
    assert removed["keys_deleted"] >= 3 and removed["rate_limit_keys"] >= 1 and removed["statistics_entries"] >= 1
    assert removed["unanswered_questions"] >= 1 and removed["asked_questions"] >= 3 and removed["review_items"] >= 2
    assert removed["faq_proposals"] == 1 and removed["faq_alternates"] == 2 and removed["knowledge_base_reloaded"]
    assert removed["slack_posts_deleted"] == 0 and removed["slack_posts_not_deleted"] == []
    assert removed["aof_rewrite"] in ("off", "started", "scheduled")  # the session's server: no AOF, say so

    left = naming(every_key_and_value(redis_client), ALICE, ALICE_EMAIL, *ALICE_WORDS)
    assert left == [], left[:5]
    served = served_alternates(client)
    assert nonsense["text"] not in served and parcel["text"] not in served and bob_item["text"] in served
    # The version before the erasure held her words: it can no longer be restored.
    assert client.get("/admin/faq", headers=ADMIN).json()["previous"] is None
    assert client.post("/admin/faq/restore", headers=ADMIN).status_code == 409
    assert parcel["text"] not in served_alternates(client)
    assert export(client, ALICE)["conversations"] == []
    assert alice_escalation not in {e["id"] for e in client.get("/admin/escalations", headers=ADMIN).json()}
    # The other customer: exactly as before, and still served.
    assert export(client, BOB) == bob_before
    assert bob_escalation in {e["id"] for e in client.get("/admin/escalations", headers=ADMIN).json()}
    assert client.post(f"/admin/escalations/{bob_escalation}/resolve", json={"agent": "sam"},
                       headers=ADMIN).status_code == 200
    # An erasure of nobody removes nothing, and bad addresses are refused naming the part.
    nobody = client.delete("/admin/customers/rest/never-seen-1", headers=ADMIN).json()
    assert nobody["conversations"] == [] and nobody["keys_deleted"] == 0
    bad = client.delete("/admin/customers/NOT%20A%20CHANNEL/x", headers=ADMIN)
    assert bad.status_code == 422 and "channel" in bad.text


def test_an_agents_faq_label_waits_for_an_admin_who_approves_or_rejects_it_audited(client):
    chat(client, "gus-4410", "is the blorptastic hinkelwurst lamp in stock")
    chat(client, "gus-4410", "does the vexillomancy rug come in teal")
    items = {i["text"]: i for i in review_items(client, "gus-4410")}
    agent = agent_token(client, "lou")
    inbox = client.app.state.components.bot.review
    before = inbox.faq_alternates()
    lamp, rug = items["is the blorptastic hinkelwurst lamp in stock"], items["does the vexillomancy rug come in teal"]
    first = client.post(f"/admin/review/{lamp['id']}", json={"faq_id": "hours"},
                        headers=agent).json()["changed"][0]["faq_proposal"]
    second = client.post(f"/admin/review/{rug['id']}", json={"faq_id": "parcel"},
                         headers=agent).json()["changed"][0]["faq_proposal"]
    assert inbox.faq_alternates() == before  # an agent's label adds nothing by itself

    for method, path in (("GET", "/admin/proposals"), ("POST", f"/admin/proposals/{first}/approve"),
                         ("POST", f"/admin/proposals/{second}/reject")):
        assert client.request(method, path, headers=agent).status_code == 403, path  # for admins only
    pending = client.get("/admin/proposals", headers=ADMIN).json()
    assert {(p["id"], p["faq_id"], p["proposed_by"], p["user_id"]) for p in pending} >= {
        (first, "hours", "lou", "gus-4410"), (second, "parcel", "lou", "gus-4410")}

    approved = client.post(f"/admin/proposals/{first}/approve", headers=ADMIN)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert client.post(f"/admin/proposals/{second}/reject", headers=ADMIN).json()["status"] == "rejected"
    assert client.post(f"/admin/proposals/{first}/approve", headers=ADMIN).status_code == 404  # decided
    alternates = inbox.faq_alternates()
    assert "is the blorptastic hinkelwurst lamp in stock" in alternates["hours"]
    assert "does the vexillomancy rug come in teal" not in alternates.get("parcel", [])
    assert {first, second}.isdisjoint(p["id"] for p in client.get("/admin/proposals", headers=ADMIN).json())
    audit = client.get("/admin/audit", headers=ADMIN).json()
    assert {(e["actor"], e["action"], e["target"]) for e in audit} >= {
        ("admin", "proposal.approve", first), ("admin", "proposal.reject", second)}


def test_an_erasure_cut_short_after_the_statistics_and_run_again_takes_each_question_off_once(
        redis_server, redis_url, redis_prefix):
    """Statistics first: Redis refuses the erasure's deletes (an ACL without DEL), which fails it part-way."""
    from bot.customers import CustomerData
    from bot.stats import BotStats
    from bot.store import ConversationStore

    client, keys = redis.Redis.from_url(redis_url), Keys(redis_prefix)
    store, stats = ConversationStore(client, keys), BotStats(client, keys)
    for user, question in (("ida-1", "where is the glorpwhistle"), ("ida-1", "the shared question"),
                           ("jon-2", "the shared question")):
        store.start(f"rest:{user}", "rest", user, None)
        store.append(f"rest:{user}", "customer", question, author=user)
        store.append(f"rest:{user}", "unanswered", question, author=user)
        stats.fallback(question)
    unanswered = keys.stats(stats.day(), "unanswered")
    assert client.zscore(unanswered, "the shared question") == 2
    name = f"eraser-{uuid.uuid4().hex[:6]}"
    client.acl_setuser(name, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-del", "-unlink"])
    try:
        limited = redis.Redis(unix_socket_path=redis_server.socket_file, username=name, password="pw")
        with pytest.raises(redis.exceptions.NoPermissionError):
            CustomerData(limited, keys, rewrite=False).erase("rest", "ida-1")
    finally:
        client.acl_deluser(name)
    # Cut short: her words are still in the transcript, but the statistics no longer count her questions.
    assert [e["text"] for e in store.history("rest:ida-1") if e["role"] == "unanswered"] == [
        "where is the glorpwhistle", "the shared question"]
    assert client.zscore(unanswered, "the shared question") == 1 and client.zscore(unanswered,
                                                                                   "where is the glorpwhistle") is None
    again = CustomerData(client, keys, rewrite=False).erase("rest", "ida-1")
    assert again["conversations"] == ["rest:ida-1"] and again["unanswered_questions"] == 0  # none taken twice
    assert client.zscore(unanswered, "the shared question") == 1  # still jon's
    assert naming(every_key_and_value(client), "ida-1", "glorpwhistle") == []


def test_resolved_escalations_expire_after_the_retention_and_leave_the_list(client):
    components = client.app.state.components
    bot, store, keys = components.bot, components.redis, Keys(components.settings.redis_prefix)
    assert bot.queue.retention_s == 2 * 86_400  # FRONTDESK_ESCALATION_RETENTION_DAYS=2
    chat(client, "carol-5150", "/human")
    [escalation] = [e["id"] for e in client.get("/admin/escalations", headers=ADMIN).json()
                    if e["user_id"] == "carol-5150"]
    record_key = keys.esc(escalation)
    assert store.ttl(record_key) == -1  # open: kept until someone deals with it
    assert client.post(f"/admin/escalations/{escalation}/resolve", json={"agent": "sam"},
                       headers=ADMIN).status_code == 200
    assert 2 * 86_400 - 60 < store.ttl(record_key) <= 2 * 86_400
    # Stats keep counts longer than customers' words: the unanswered texts go with the retention.
    day = bot.stats.day()
    bot.stats.fallback("does the zorblax come in teal")  # as the bot records a question it could not answer
    assert store.ttl(keys.stats(day, "counts")) > 2 * 86_400
    unanswered_ttl = store.ttl(keys.stats(day, "unanswered"))
    assert 0 < unanswered_ttl <= 2 * 86_400

    store.pexpire(record_key, 50)  # the retention running out, sped up
    until(lambda: not store.exists(record_key), 10)
    assert escalation not in {e["id"] for e in client.get("/admin/escalations", headers=ADMIN).json()}
    assert store.zscore(keys.esc("all"), escalation) is None  # the index forgot it too
