"""Escalations cannot bury the staff desk: limits per customer and per client address, unclaimed ones expiring,
a cap on reminders, and a status index the console reads one page of. Real bot, real model, real Redis.

Several "workers" are several `Bot` objects on one Redis prefix, each with its own client, sweeping at the same
time from their own threads, as every server process runs `reannounce_unclaimed`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from bot.core import Bot, BotHooks
from bot.customers import CustomerData
from bot.escalations import EscalationPolicy, EscalationQueue, EscalationStatus
from bot.events import QuietObserver
from bot.keys import Keys
from bot.messages import InboundMessage
from bot.ratelimit import EscalationLimits, LimitScope
from bot.templates import Templates
from tests.support.fleet import until

TEMPLATES = Templates.load()
LIMITED = TEMPLATES.say("escalation_limited")
EXPIRED = TEMPLATES.say("escalation_expired")
NO_LIMITS = EscalationPolicy(per_customer=(0, 3600.0), per_address=(0, 3600.0), expire_after_s=None,
                             max_reminders=None)


class Recorder(QuietObserver):
    """What the bot reported to its observer (the Prometheus one counts the same calls; adapters.runtime.metrics)."""

    def __init__(self):
        self.refused: list[tuple[str, str]] = []
        self.expired: list[str] = []

    def escalation_refused(self, scope: str, channel: str) -> None:
        self.refused.append((scope, channel))

    def escalation_expired(self, channel: str) -> None:
        self.expired.append(channel)


def worker(redis_url, prefix, engine, kb, policy: EscalationPolicy, announced: list | None = None,
           observer: Recorder | None = None) -> Bot:
    """One server process's bot: its own Redis client, staff notifications into `announced`."""
    hooks = BotHooks(on_escalation=[lambda record, transcript: announced.append(record)] if announced is not None
                     else [], observer=observer or QuietObserver())
    return Bot(redis.Redis.from_url(redis_url), engine, kb, prefix=prefix, hooks=hooks, escalation_policy=policy)


def ask(bot: Bot, user: str, text: str = "/human", address: str | None = None) -> str:
    """A customer's message on the REST channel; the text of the bot's one reply."""
    handled = bot.handle(InboundMessage("rest", user, user, text, client_address=address))
    return " ".join(r.text for r in handled.replies)


@contextmanager
def sweeping(bots: list[Bot], older_than: float) -> Iterator[None]:
    """Every bot runs the re-announce sweep in its own thread, over and over, until the block ends."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def run(bot: Bot) -> None:
        while not stop.is_set():
            try:
                bot.reannounce_unclaimed(older_than)
            except BaseException as exc:  # reported to the test below
                failures.append(exc)
                return
            time.sleep(0.01)

    threads = [threading.Thread(target=run, args=(bot,), daemon=True) for bot in bots]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not failures, failures


def test_a_customer_gets_a_person_three_times_an_hour_then_a_polite_no(redis_url, redis_prefix, demo_engine,
                                                                        demo_kb):
    announced, observer = [], Recorder()
    policy = EscalationPolicy(per_customer=(3, 3600.0), per_address=(0, 3600.0))
    bot = worker(redis_url, redis_prefix, demo_engine, demo_kb, policy, announced, observer)
    for _ in range(3):
        assert ask(bot, "pat") == TEMPLATES.escalated("asked_for_human")
        [waiting] = bot.queue.list(EscalationStatus.OPEN)
        bot.resolve(waiting.id, "sam")  # back with the bot: the next /human is a new request

    assert ask(bot, "pat") == LIMITED  # the fourth in the hour: told plainly, no escalation, nothing to staff
    assert len(bot.queue.list()) == 3 and len(announced) == 3
    assert bot.store.meta("rest:pat")["status"] == "bot"  # the bot keeps answering
    assert "assistant" in ask(bot, "pat", "hello")  # greeted, not handed over
    assert observer.refused == [("customer", "rest")]
    assert bot.stats.summary()["escalations_refused"] == 1
    assert ask(bot, "quinn") == TEMPLATES.escalated("asked_for_human")  # someone else is not held back


def test_fresh_customer_ids_from_one_address_share_its_limit(redis_url, redis_prefix, demo_engine, demo_kb):
    announced, observer = [], Recorder()
    policy = EscalationPolicy(per_customer=(3, 3600.0), per_address=(5, 3600.0))
    bot = worker(redis_url, redis_prefix, demo_engine, demo_kb, policy, announced, observer)
    replies = [ask(bot, f"fresh-{i}", address="203.0.113.7") for i in range(40)]
    assert replies.count(TEMPLATES.escalated("asked_for_human")) == 5
    assert replies.count(LIMITED) == 35
    assert len(bot.queue.list(EscalationStatus.OPEN, limit=500)) == 5 and len(announced) == 5
    assert observer.refused == [("address", "rest")] * 35
    assert bot.stats.summary()["escalations_refused"] == 35
    # Another address, and a channel that knows none, are not held back by it.
    assert ask(bot, "elsewhere", address="198.51.100.2") == TEMPLATES.escalated("asked_for_human")
    assert ask(bot, "no-address") == TEMPLATES.escalated("asked_for_human")


def test_an_unclaimed_escalation_expires_once_and_the_bot_has_the_conversation_again(redis_url, redis_prefix,
                                                                                       demo_engine, demo_kb):
    # FRONTDESK_ESCALATION_EXPIRE_HOURS=0.0003: about a second. No reminders, so only the expiry is at work.
    policy = EscalationPolicy(expire_after_s=0.0003 * 3600, max_reminders=0)
    observers = [Recorder(), Recorder()]
    bots = [worker(redis_url, redis_prefix, demo_engine, demo_kb, policy, observer=o) for o in observers]
    assert ask(bots[0], "sky") == TEMPLATES.escalated("asked_for_human")
    [escalation] = bots[0].queue.list(EscalationStatus.OPEN)
    assert ask(bots[0], "sky", "hello?") == TEMPLATES.say("waiting_for_agent")

    with sweeping(bots, older_than=0.05):  # two workers at once, as every process sweeps
        until(lambda: bots[1].queue.get(escalation.id).status == EscalationStatus.EXPIRED, seconds=30)
        time.sleep(0.3)  # a few more rounds of both: none may expire or count it again

    queue = bots[0].queue
    assert queue.get(escalation.id).expired_at is not None
    assert [e.id for e in queue.list(EscalationStatus.EXPIRED)] == [escalation.id]
    assert queue.list([EscalationStatus.OPEN, EscalationStatus.CLAIMED]) == []  # off the console's queue
    assert bots[0].stats.summary()["escalations_expired"] == 1  # GET /admin/stats
    assert sum(len(o.expired) for o in observers) == 1
    told = [e for e in bots[0].store.history("rest:sky") if e["text"] == EXPIRED]
    assert len(told) == 1  # the customer is told, once
    assert bots[0].store.meta("rest:sky")["status"] == "bot"
    assert "assistant" in ask(bots[0], "sky", "hello")  # the bot answers again
    assert ask(bots[0], "sky") == TEMPLATES.escalated("asked_for_human")  # and a person can be asked for again


def test_reminders_stop_after_the_cap_whoever_sweeps(redis_url, redis_prefix, demo_engine, demo_kb):
    announced: list = []
    policy = EscalationPolicy(expire_after_s=None, max_reminders=2)
    bots = [worker(redis_url, redis_prefix, demo_engine, demo_kb, policy, announced) for _ in range(2)]
    ask(bots[0], "rio")
    until(lambda: len(announced) == 1)  # the first announcement
    with sweeping(bots, older_than=0.0):  # due at every round: only the cap stops them
        until(lambda: len(announced) == 3)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # keep looking: no third reminder, from either worker
            assert len(announced) == 3
            time.sleep(0.05)
    assert [e.reannounced for e in announced] == [False, True, True]
    assert bots[0].queue.get(announced[0].id).reminders == 2
    assert bots[0].queue.get(announced[0].id).status == EscalationStatus.OPEN  # still waiting for someone


def test_every_status_change_moves_the_escalation_between_the_status_sets(redis_url, redis_prefix, demo_engine,
                                                                          demo_kb):
    bot = worker(redis_url, redis_prefix, demo_engine, demo_kb, NO_LIMITS)
    client, keys = redis.Redis.from_url(redis_url), Keys(redis_prefix)

    def filed(escalation_id: str) -> list[str]:
        return [s for s in EscalationStatus if client.zscore(keys.escalation_index(s), escalation_id) is not None]

    for user in ("ann", "ben", "cat", "dan"):
        ask(bot, user)
    ids = {e.user_id: e.id for e in bot.queue.list()}
    assert all(filed(i) == ["open"] for i in ids.values())
    bot.claim(ids["ann"], "sam")
    bot.claim(ids["ben"], "sam")
    bot.resolve(ids["ben"], "sam")
    bot.resolve(ids["cat"], "sam")  # open straight to resolved
    EscalationQueue(client, keys, expire_after_s=0).sweep_unclaimed(0)  # "dan" waited too long
    assert {user: filed(i) for user, i in ids.items()} == {
        "ann": ["claimed"], "ben": ["resolved"], "cat": ["resolved"], "dan": ["expired"]}
    assert [e.id for e in bot.queue.list([EscalationStatus.OPEN, EscalationStatus.CLAIMED])] == [ids["ann"]]
    with pytest.raises(Exception, match="already expired"):
        bot.resolve(ids["dan"], "sam")

    CustomerData(client, keys, rewrite=False).erase("rest", "ann")
    assert filed(ids["ann"]) == [] and client.zscore(keys.esc("all"), ids["ann"]) is None
    # Past their retention the records are gone, and the ids leave the sets with them.
    EscalationQueue(client, keys, retention_s=0).prune(time.time() + 1)
    assert filed(ids["ben"]) == filed(ids["dan"]) == []
    assert client.zscore(keys.esc("all"), ids["ben"]) is None


def test_escalations_from_before_the_index_are_filed_once(redis_url, redis_prefix):
    client, keys = redis.Redis.from_url(redis_url), Keys(redis_prefix)
    # As the previous version left them: records, `all` and the re-announce schedule, no status sets.
    for escalation_id, status, at in (("old1", "open", 100.0), ("old2", "claimed", 200.0), ("old3", "resolved", 300.0)):
        client.hset(keys.esc(escalation_id), mapping={
            "id": escalation_id, "conversation_id": f"rest:{escalation_id}", "channel": "rest",
            "user_id": escalation_id, "reason": "asked_for_human", "status": status, "created_at": str(at),
            **({"resolved_at": str(at + 5)} if status == "resolved" else {})})
        client.zadd(keys.esc("all"), {escalation_id: at})
    client.zadd(keys.esc("open"), {"old1": 100.0})
    client.zadd(keys.esc("all"), {"long-gone": 50.0})  # its record expired after its retention

    queue = EscalationQueue(client, keys)
    assert queue.list(EscalationStatus.OPEN) == []  # not filed yet
    assert queue.ensure_indexed() == 4
    assert [e.id for e in queue.list(EscalationStatus.OPEN)] == ["old1"]
    assert [e.id for e in queue.list([EscalationStatus.CLAIMED, EscalationStatus.RESOLVED])] == ["old3", "old2"]
    assert client.zscore(keys.escalation_index("resolved"), "old3") == 305.0  # by when it was resolved
    assert client.zscore(keys.esc("all"), "long-gone") is None
    assert EscalationQueue(client, keys).ensure_indexed() == 0  # once per Redis: the next start only looks


def test_the_queue_and_its_status_sets_on_every_deployment(redis_backend, redis_prefix):
    """One Redis, a three-master cluster and Sentinel: every step touches only `{p:esc}` keys (one slot), and
    the escalation limits' keys keep to their own customer's and address's slot."""
    client, keys = redis_backend.client(), Keys(redis_prefix)
    queue = EscalationQueue(client, keys, expire_after_s=3600, max_reminders=1)
    made = [queue.create(conversation_id=f"rest:c{i}", channel="rest", user_id=f"c{i}", reason="asked_for_human")
            for i in range(4)]
    queue.claim(made[0].id, "sam")
    queue.resolve(made[1].id, "sam")
    sweep = queue.sweep_unclaimed(0, now=time.time() + 2 * 3600)  # two hours on: the open two expire
    assert {e.id for e in sweep.expired} == {made[2].id, made[3].id} and sweep.reminders == []
    assert [e.id for e in queue.list([EscalationStatus.OPEN, EscalationStatus.CLAIMED])] == [made[0].id]
    assert {e.id for e in queue.list("expired")} == {made[2].id, made[3].id}
    assert queue.refile(made[1].id) and queue.ensure_indexed() == 0
    assert queue.prune(time.time() + 40 * 86_400) == 3  # resolved and expired, past the 30 days' retention

    limits = EscalationLimits(client, keys, per_customer=(2, 60.0), per_address=(3, 60.0))
    asks = [InboundMessage("web", f"s{i}", f"s{i}", "/human", uid=f"u{i}", client_address="2001:db8::/64")
            for i in range(4)]
    assert [limits.refused(m) for m in asks[:3]] == [None, None, None]
    assert limits.refused(asks[2]) is None  # the same message handled again (its worker died) counts once
    assert limits.refused(asks[3]) == LimitScope.ADDRESS
