"""Resolution figures (`bot.resolution`): scripted conversations through the real bot, model, knowledge base and
Redis, each counted under the rule. The bot's clock is injected (the statistics and the reopen check read it),
so a return within the window, across midnight and after the window land where the rule says."""

from __future__ import annotations

import calendar

import pytest
import redis

from bot.keys import Keys
from bot.messages import InboundMessage
from bot.resolution import MEMORY_CAP
from tests.bot.test_bot import make_bot

HOUR = 3600
MONDAY = calendar.timegm((2026, 3, 2, 9, 0, 0))  # 09:00 UTC
SHIPPING = "how much does standard shipping cost?"  # the demo FAQ's shipping-costs, intent shipping_info
REFUND = "when will I get my refund?"  # refund-timing, refund_status
RETURN = "how do I return an item?"  # how-to-start-return, return_item
ORDER = "where is my order?"  # order-tracking, order_status
PAYMENT = "which payment methods do you accept?"  # payment-methods, payment_problem
NONSENSE = "what is the boiling point of tungsten"  # out of scope: a fallback


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def desk(redis_url, redis_prefix, demo_engine, demo_kb):
    clock = Clock(MONDAY)
    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb, clock=clock, resolution_s=24 * HOUR)
    yield bot, clock
    bot.close()


@pytest.fixture()
def any_desk(redis_backend, redis_prefix, demo_engine, demo_kb):
    """`desk` on one Redis, a Redis Cluster (the memory and the day sets live in different slots) and Sentinel."""
    clock = Clock(MONDAY)
    bot, _ = make_bot(redis_backend, redis_prefix, demo_engine, demo_kb, clock=clock, resolution_s=24 * HOUR)
    yield bot, clock
    bot.close()


def tell(bot, who: str, text: str, channel: str = "rest") -> list:
    return bot.handle(InboundMessage(channel, who, who, text, display_name=who.title())).replies


def hand_off_and_resolve(bot, who: str) -> None:
    assert "colleague" in tell(bot, who, "/human")[0].text
    [escalation] = [e for e in bot.queue.list() if e.user_id == who]
    bot.claim(escalation.id, "sam")
    bot.agent_reply(escalation.id, "sam", "Sorted it for you.")
    assert bot.resolve(escalation.id, "sam").escalation.status == "resolved"  # the rating question follows


def figures(bot, days: int = 1) -> dict:
    return bot.stats.summary(days=days)["resolution"]


def counted(resolution: dict) -> tuple[int, int, int, int]:
    return (resolution["conversations"], resolution["resolved_by_bot"], resolution["handed_to_staff"],
            resolution["reopened"])


def test_answered_and_nothing_else_is_resolved_by_the_bot(desk):
    bot, _ = desk
    tell(bot, "ana", "hello!")
    assert "$5.95" in tell(bot, "ana", SHIPPING)[0].text
    tell(bot, "ana", "ok thanks, bye!")
    resolution = figures(bot)
    assert counted(resolution) == (1, 1, 0, 0) and resolution["rate"] == 1.0
    assert resolution["answered"] == 1 and resolution["reopen_rate"] == 0.0


def test_answered_then_escalated_is_handed_to_staff_not_resolved(desk):
    bot, _ = desk
    assert tell(bot, "ben", RETURN)[0].source.id == "how-to-start-return"
    tell(bot, "ben", "/human")
    tell(bot, "ben", "hello? anyone there?")  # waiting for a person: still with staff
    resolution = figures(bot)
    assert counted(resolution) == (1, 0, 1, 0) and resolution["rate"] == 0.0


def test_the_same_question_again_within_the_window_reopens_the_answer(desk):
    bot, clock = desk
    tell(bot, "cat", SHIPPING)
    clock.now += 6 * HOUR
    assert "$5.95" in tell(bot, "cat", "how much is shipping")[0].text  # answered again, the same entry
    resolution = figures(bot)
    assert counted(resolution) == (1, 0, 0, 1) and resolution["reopen_rate"] == 1.0


def test_a_return_after_midnight_reopens_the_day_before_and_after_the_window_is_a_new_conversation(desk):
    bot, clock = desk
    clock.now = MONDAY + 13 * HOUR  # 22:00 Monday
    tell(bot, "dan", REFUND)
    tell(bot, "eve", ORDER)
    clock.now += 10 * HOUR  # 08:00 Tuesday: within the window
    tell(bot, "dan", REFUND)
    clock.now += 15 * HOUR  # 23:00 Tuesday: 25 hours after Eve's answer
    tell(bot, "eve", ORDER)
    monday, tuesday = bot.stats.day(1), bot.stats.day(0)
    days = {d["day"]: d for d in bot.stats.daily(2)}
    assert days[monday]["resolution_rate"] == 0.5 and days[monday]["reopen_rate"] == 0.5  # Dan came back
    assert days[tuesday]["resolution_rate"] == 1.0 and days[tuesday]["reopen_rate"] == 0.0
    both = figures(bot, days=2)
    assert counted(both) == (4, 3, 0, 1)  # conversation-days: Dan's Monday reopened, the other three resolved
    assert bot.stats.summary(days=1)["resolution"]["reopened"] == 0  # Tuesday alone: nobody came back


def test_a_topic_is_the_classified_intent_too(desk):
    """Another FAQ entry of the same intent is the same topic: the customer came back to it."""
    bot, clock = desk
    tell(bot, "fay", SHIPPING)
    clock.now += HOUR
    assert tell(bot, "fay", "do you ship internationally?")[0].source.id == "international-shipping"
    assert counted(figures(bot)) == (1, 0, 0, 1)


def test_rated_low_after_a_staff_hand_off_is_not_resolved(desk):
    bot, clock = desk
    tell(bot, "gus", "how do I cancel my order?")
    hand_off_and_resolve(bot, "gus")
    tell(bot, "gus", "2")
    client, keys = bot.stats.redis, Keys(bot.stats.keys.prefix)
    assert client.sismember(keys.stats(bot.stats.day(), "rated_low"), "rest:gus")
    assert counted(figures(bot)) == (1, 0, 1, 0)
    # Handed off late on Monday, answered on Tuesday and rated 1 then: Tuesday was the bot's alone, but not resolved.
    clock.now = MONDAY + 14 * HOUR  # 23:00
    hand_off_and_resolve(bot, "hal")
    clock.now += 2 * HOUR
    assert tell(bot, "hal", PAYMENT)[0].source.id == "payment-methods"
    tell(bot, "hal", "1")
    tuesday = figures(bot)
    assert counted(tuesday) == (1, 0, 0, 0) and tuesday["answered"] == 1
    assert bot.stats.summary(days=2)["csat"]["count"] == 2


def test_small_talk_and_fallbacks_alone_are_not_resolved(desk):
    bot, _ = desk
    tell(bot, "ida", "hello!")
    tell(bot, "ida", NONSENSE)
    tell(bot, "ida", "thanks")
    resolution = figures(bot)
    assert counted(resolution) == (1, 0, 0, 0) and resolution["answered"] == 0 and resolution["reopen_rate"] is None
    assert resolution["by_topic"] == {}  # small talk and out of scope have no topic


def test_per_channel_and_per_topic(any_desk):
    bot, clock = any_desk
    tell(bot, "jo", SHIPPING, channel="web")  # resolved
    tell(bot, "kim", SHIPPING, channel="telegram")  # reopened
    clock.now += HOUR
    tell(bot, "kim", SHIPPING, channel="telegram")
    tell(bot, "lee", RETURN, channel="telegram")  # answered, then handed to staff
    tell(bot, "lee", "/human", channel="telegram")
    tell(bot, "max", NONSENSE)  # nothing answered
    resolution = figures(bot)
    assert counted(resolution) == (4, 1, 1, 1) and resolution["rate"] == 0.25
    assert {name: counted(f) for name, f in resolution["by_channel"].items()} == {
        "rest": (1, 0, 0, 0), "telegram": (2, 0, 1, 1), "web": (1, 1, 0, 0)}
    assert [*resolution["by_topic"]] == ["shipping-costs", "how-to-start-return"]  # most conversations first
    assert counted(resolution["by_topic"]["shipping-costs"]) == (2, 1, 0, 1)
    assert resolution["by_topic"]["shipping-costs"]["rate"] == 0.5
    assert counted(resolution["by_topic"]["how-to-start-return"]) == (1, 0, 1, 0)
    # The rest of /admin/stats is as before: containment counts conversations without an escalation.
    summary = bot.stats.summary()
    assert summary["conversations_today"] == 4 and summary["escalated_conversations"] == 1


def test_the_conversations_memory_is_bounded_expires_with_the_window_and_costs_one_statistics_write(
        desk, redis_url):
    bot, clock = desk
    client = redis.Redis.from_url(redis_url)
    memory = bot.stats.keys.answered("rest:nia")
    writes = []
    real = bot.stats._execute
    bot.stats._execute = lambda batch: (writes.append(len(batch)), real(batch))
    tell(bot, "nia", SHIPPING)
    assert len(writes) == 1  # the message's statistics, resolution included, in one pipeline
    assert {m.decode() for m in client.zrange(memory, 0, -1)} == {"shipping-costs", "intent:shipping_info"}
    assert 0 < client.ttl(memory) <= 24 * HOUR
    for i in range(MEMORY_CAP + 5):
        bot.stats.answered("rest:nia", f"entry-{i}")
    assert client.zcard(memory) == MEMORY_CAP
    clock.now += 25 * HOUR
    bot.stats.answered("rest:nia", "late")
    assert [m.decode() for m in client.zrange(memory, 0, -1)] == ["late"]  # the rest were older than the window


def test_export_holds_and_erasure_removes_what_the_figures_keep_of_a_customer(desk, redis_url):
    from bot.customers import CustomerData
    from tests.support.redis_search import every_key_and_value, naming

    bot, clock = desk
    client, who = redis.Redis.from_url(redis_url), "oli-4471"
    tell(bot, who, SHIPPING)
    clock.now += HOUR
    tell(bot, who, SHIPPING)  # reopened
    tell(bot, who, "/human")
    data = CustomerData(client, bot.stats.keys, rewrite=False)
    [conversation] = data.export("rest", who)["conversations"]
    assert {m for m, _ in conversation["other"]["answered"]} == {"shipping-costs", "intent:shipping_info"}
    counted_in = {e["key"].partition("}:")[2] for e in data.export("rest", who)["statistics"]["counted_in"]}
    assert {"conversations", "answered", "reopened", "escalated", "topic:shipping-costs"} <= counted_in
    assert naming(every_key_and_value(client), who)
    data.erase("rest", who)
    assert naming(every_key_and_value(client), who) == []
    assert figures(bot)["conversations"] == 0


def test_a_day_before_the_figures_were_kept_has_none_rather_than_none_resolved(redis_url, redis_prefix):
    from bot.stats import BotStats

    client, keys = redis.Redis.from_url(redis_url), Keys(redis_prefix)
    stats = BotStats(client, keys, clock=lambda: MONDAY)
    client.sadd(keys.stats(stats.day(1), "conversations"), "rest:old")  # as the version before recorded a day
    client.hincrby(keys.stats(stats.day(1), "counts"), "messages", 1)
    stats.message("rest:new")  # today: a message, nothing answered
    before, today = stats.daily(2)
    assert before["conversations"] == 1 and before["containment_rate"] == 1.0
    assert before["resolution_rate"] is None and before["reopen_rate"] is None
    assert today["resolution_rate"] == 0.0 and today["reopen_rate"] is None
    assert stats.summary(days=2)["resolution"]["conversations"] == 1


def test_the_window_is_a_validated_setting():
    from pydantic import ValidationError

    from adapters.runtime.settings import Settings

    assert Settings().resolution_hours == 24 and Settings(FRONTDESK_RESOLUTION_HOURS="1.5").resolution_hours == 1.5
    for bad in ("0", "-3", "169", "a day"):
        with pytest.raises(ValidationError, match="FRONTDESK_RESOLUTION_HOURS"):
            Settings(FRONTDESK_RESOLUTION_HOURS=bad)
