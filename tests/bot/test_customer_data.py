"""Customers' data rights over the real HTTP routes and a real Redis, with data made by real messages.

Two customers talk to the bot over POST /chat (one types her e-mail address), are handed to staff
and answered. The export holds her messages; after the erasure a SCAN of every key on the Redis
server, and of every value (strings, hashes, lists, sets, sorted sets, streams), finds neither her id
nor her address, while the other customer's data is exactly as before. Retention: a resolved
escalation expires after FRONTDESK_ESCALATION_RETENTION_DAYS and leaves the list with it.
"""

from __future__ import annotations

import time

import pytest

from bot.keys import Keys

ADMIN = {"Authorization": "Bearer desk-token"}
ALICE, ALICE_EMAIL = "alice-7731", "alice.w7731@example.org"
BOB, BOB_EMAIL = "bob-2208", "bob.k2208@example.net"


@pytest.fixture(scope="module")
def client(desk_client):
    return desk_client(FRONTDESK_ESCALATION_RETENTION_DAYS="2")


def chat(client, sender: str, text: str) -> list[str]:
    response = client.post("/chat", json={"sender": sender, "message": text})
    assert response.status_code == 200, response.text
    return [r["text"] for r in response.json()["replies"]]


def talk(client, sender: str, email: str) -> str:
    """A short conversation with an unanswerable question, an e-mail address, a hand-off and a staff reply."""
    chat(client, sender, "hello")
    chat(client, sender, f"zorbly quenflax {email} wibbleton")  # nonsense: the bot falls back (stats count it)
    chat(client, sender, f"please write to me at {email}, my parcel never came")
    chat(client, sender, "/human")
    [escalation] = [e["id"] for e in client.get("/admin/escalations", headers=ADMIN).json() if e["user_id"] == sender]
    assert client.post(f"/admin/escalations/{escalation}/reply", json={"agent": "sam", "text": "Sam here."},
                       headers=ADMIN).status_code == 200
    return escalation


def every_key_and_value(redis_client) -> list[tuple[bytes, bytes]]:
    """(key, value) for every key on the server, one pair per element of a collection."""
    pairs = []
    for key in redis_client.scan_iter(count=1000):
        kind = redis_client.type(key)
        if kind == b"string":
            values = [redis_client.get(key) or b""]
        elif kind == b"hash":
            values = [k + b"=" + v for k, v in redis_client.hgetall(key).items()]
        elif kind == b"list":
            values = redis_client.lrange(key, 0, -1)
        elif kind == b"set":
            values = list(redis_client.smembers(key))
        elif kind == b"zset":
            values = [m for m, _ in redis_client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            values = [b" ".join(k + b"=" + v for k, v in fields.items()) for _, fields in redis_client.xrange(key)]
        else:  # the key vanished between SCAN and TYPE (another test's expiry)
            values = []
        pairs += [(key, value) for value in values] or [(key, b"")]
    return pairs


def naming(pairs, *needles: str) -> list:
    return [(k, v) for k, v in pairs if any(n.encode() in k or n.encode() in v for n in needles)]


def export(client, user_id: str) -> dict:
    response = client.get(f"/admin/customers/rest/{user_id}/export", headers=ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    body.pop("exported_at")
    for conversation in body["conversations"]:
        conversation.pop("pending")  # whether the sweeper has cleared its marker yet: timing, not data
    return body


def test_export_holds_the_customers_data_and_erasure_leaves_no_trace_of_them_only(client):
    redis_client = client.app.state.components.redis
    alice_escalation = talk(client, ALICE, ALICE_EMAIL)
    bob_escalation = talk(client, BOB, BOB_EMAIL)

    data = export(client, ALICE)
    [conversation] = data["conversations"]
    said = [e["text"] for e in conversation["transcript"] if e["role"] == "customer"]
    assert said[0] == "hello" and f"please write to me at {ALICE_EMAIL}, my parcel never came" in said
    assert "Sam here." in [e["text"] for e in conversation["transcript"]]
    assert conversation["meta"]["user_id"] == ALICE
    assert [e["id"] for e in data["escalations"]] == [alice_escalation]
    assert data["rate_limit"]  # the rate-limit window counting her messages
    assert BOB not in str(data) and BOB_EMAIL not in str(data)
    bob_before = export(client, BOB)
    assert naming(every_key_and_value(redis_client), ALICE, ALICE_EMAIL)  # there was something to find

    response = client.delete(f"/admin/customers/rest/{ALICE}", headers=ADMIN)
    assert response.status_code == 200, response.text
    removed = response.json()
    assert removed["conversations"] == [f"rest:{ALICE}"] and removed["escalations"] == [alice_escalation]
    assert removed["keys_deleted"] >= 3 and removed["rate_limit_keys"] >= 1 and removed["statistics_entries"] >= 1

    left = naming(every_key_and_value(redis_client), ALICE, ALICE_EMAIL)
    assert left == [], left[:5]
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
    deadline = time.monotonic() + 10
    while store.exists(record_key):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert escalation not in {e["id"] for e in client.get("/admin/escalations", headers=ADMIN).json()}
    assert store.zscore(keys.esc("all"), escalation) is None  # the index forgot it too


def test_export_and_erasure_work_on_a_cluster_and_through_sentinel_too(redis_backend, redis_prefix):
    """Keys of many hash tags (slots on a cluster): SCAN reaches every node, each delete goes to its own slot."""
    from bot.customers import CustomerData
    from bot.escalations import EscalationQueue
    from bot.ratelimit import RateLimiter
    from bot.stats import BotStats
    from bot.store import ConversationStore

    client, keys = redis_backend.client(), Keys(redis_prefix)
    store, queue, stats = ConversationStore(client, keys), EscalationQueue(client, keys), BotStats(client, keys)
    for user in ("dina-1", "eli-2"):
        conversation = f"slack:D-{user}"  # a Slack DM: the conversation id is not the user id
        store.start(conversation, "slack", user, None)
        store.append(conversation, "customer", f"reach me at {user}@example.com", user_id=user)
        store.append(conversation, "unanswered", f"reach me at {user}@example.com")
        stats.message(conversation)
        stats.fallback(f"reach me at {user}@example.com")
        stats.escalation(conversation)
        RateLimiter(client, keys).allow("slack", user)
        record = queue.create(conversation_id=conversation, channel="slack", user_id=user, reason="asked_for_human")
        queue.link(record.id, "slack", f"ts-{user}")
    data = CustomerData(client, keys)
    exported = data.export("slack", "dina-1")
    assert [c["conversation_id"] for c in exported["conversations"]] == ["slack:D-dina-1"]
    assert "reach me at dina-1@example.com" in [e["text"] for e in exported["conversations"][0]["transcript"]]
    eli_before = data.export("slack", "eli-2")

    removed = data.erase("slack", "dina-1")
    assert removed["conversations"] == ["slack:D-dina-1"] and len(removed["escalations"]) == 1
    ours = [(k, v) for k, v in every_key_and_value(client) if redis_prefix.encode() in k]
    assert ours and naming(ours, "dina-1") == []
    after = data.export("slack", "eli-2")
    assert {**after, "exported_at": 0} == {**eli_before, "exported_at": 0}
    assert queue.find_by_link("slack", "ts-eli-2") is not None and queue.find_by_link("slack", "ts-dina-1") is None
