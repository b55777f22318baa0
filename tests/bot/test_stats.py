"""Conversation statistics: recorded by the real bot into a real Redis, summed up for the console."""

from __future__ import annotations

import calendar
import logging

import pytest
import redis

from bot.keys import Keys
from bot.stats import DAY, BotStats, normalise_question
from tests.bot.test_bot import make_bot, say


def test_a_day_of_conversations_adds_up(redis_url, redis_prefix, demo_engine, demo_kb):
    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb)
    say(bot, "hello!", conversation="alice")
    assert "$5.95" in say(bot, "how much does standard shipping cost?", conversation="alice")[0].text
    for text in ("what is the boiling point of tungsten", "who painted the mona lisa",
                 "how many moons does jupiter have"):  # three fallbacks in a row: escalated
        say(bot, text, conversation="bob")
    say(bot, "/human", conversation="carol")
    say(bot, "What is the   boiling point of TUNGSTEN??", conversation="dave")

    summary = bot.stats.summary()
    assert summary["messages_today"] == 7
    assert summary["conversations_today"] == 4  # alice's two messages are one conversation
    assert (summary["escalated_conversations"], summary["contained_conversations"]) == (2, 2)
    assert summary["escalations"] == 2 and summary["fallbacks"] == 4 and summary["faq_answers"] == 1
    assert summary["containment_rate"] == 0.5 and summary["escalation_rate"] == 0.5
    # Every message but carol's /human went through the classifier.
    assert sum(count for _, count in summary["top_intents"]) == 6
    assert summary["top_unanswered"][0] == ("what is the boiling point of tungsten", 2)
    assert {text for text, _ in summary["top_unanswered"]} == {
        "what is the boiling point of tungsten", "who painted the mona lisa", "how many moons does jupiter have"}

    client = redis.Redis.from_url(redis_url)
    keys = client.keys(f"{{{redis_prefix}:stats:*")
    parts = {k.decode().partition("}:")[2] for k in keys}
    # The resolution figures' sets beside the counts (bot.resolution); one topic set per topic, Alice's among them.
    assert {p for p in parts if not p.startswith("topic:")} == {
        "counts", "conversations", "escalated", "intents", "unanswered", "asked", "answered", "topics"}
    assert "topic:shipping-costs" in parts
    assert all(0 < client.ttl(k) <= 35 * DAY for k in keys)
    # Every message's words, normalised, for a replay: the two spellings of one question count as one text.
    asked = bot.stats.asked_questions(1)
    assert sum(asked.values()) == 7 and asked["what is the boiling point of tungsten"] == 2 and asked["/human"] == 1


def test_no_conversations_means_no_rates(redis_url, redis_prefix):
    summary = BotStats(redis.Redis.from_url(redis_url), Keys(redis_prefix)).summary()
    assert summary["messages_today"] == 0 and summary["conversations_today"] == 0
    assert summary["containment_rate"] is None and summary["escalation_rate"] is None
    assert summary["top_intents"] == [] and summary["top_unanswered"] == []


def test_days_are_utc_dates_and_a_window_sums_them(redis_url, redis_prefix):
    now = [calendar.timegm((2026, 3, 2, 0, 30, 0))]  # half past midnight UTC on 2 March
    stats = BotStats(redis.Redis.from_url(redis_url), Keys(redis_prefix), clock=lambda: now[0])
    stats.message("rest:a")
    stats.escalation("rest:a")
    stats.intent("refund")
    now[0] -= 3600  # an hour earlier is the previous UTC day
    stats.message("rest:b")
    stats.message("rest:a")
    stats.intent("refund")
    stats.intent("greet")
    now[0] += 3600

    client = redis.Redis.from_url(redis_url)
    assert client.hget(Keys(redis_prefix).stats("2026-03-02", "counts"), "messages") == b"1"
    assert client.hget(Keys(redis_prefix).stats("2026-03-01", "counts"), "messages") == b"2"
    today = stats.summary(days=1)
    assert (today["messages_today"], today["conversations_today"], today["escalation_rate"]) == (1, 1, 1.0)
    assert today["top_intents"] == [("refund", 1)]
    both = stats.summary(days=2)
    assert both["since"] == "2026-03-01"
    assert (both["messages_today"], both["conversations_today"], both["escalated_conversations"]) == (3, 3, 1)
    assert both["containment_rate"] == round(2 / 3, 4)
    assert both["top_intents"] == [("refund", 2), ("greet", 1)]


def test_unanswered_questions_are_masked_capped_and_trimmed(redis_url, redis_prefix):
    assert normalise_question("  Where is ORDER 48213?  ") == "where is order <number>"
    assert normalise_question("card 4111 1111 1111 1111, mail me at jo.doe+x@mail.example.com!") == (
        "card <number>, mail me at <email>")
    assert len(normalise_question("why " * 200)) == 200

    stats = BotStats(redis.Redis.from_url(redis_url), Keys(redis_prefix), unanswered_cap=3)
    for text, times in (("often", 5), ("sometimes", 3), ("twice", 2), ("rarely", 1)):
        for _ in range(times):
            stats.fallback(text)
    stats.fallback("once more")
    stats.fallback("   ")  # nothing left to count once normalised: still a fallback
    summary = stats.summary()
    assert summary["fallbacks"] == 13
    assert summary["top_unanswered"] == [("often", 5), ("sometimes", 3), ("twice", 2)]


@pytest.mark.slow
def test_a_failing_stats_store_never_costs_a_reply(redis_url, redis_prefix, demo_engine, demo_kb, tmp_path,
                                                     caplog):
    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb)
    # The conversation store still works; only the statistics' Redis is gone.
    bot.stats.redis = redis.Redis(unix_socket_path=str(tmp_path / "no-redis.sock"))
    with caplog.at_level(logging.WARNING, logger="bot.stats"):
        assert "Alice" in say(bot, "hello!")[0].text
        assert say(bot, "what is the boiling point of tungsten")[0].sender == "bot"
        assert "colleague" in say(bot, "/human")[0].text
    assert bot.queue.list()[0].reason == "asked_for_human"
    assert "statistics not recorded" in caplog.text
