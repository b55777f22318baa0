"""The per-customer rate limit: shared through Redis, friendly when hit, other customers unaffected."""

from __future__ import annotations

import redis

from bot.keys import Keys
from bot.messages import InboundMessage
from bot.ratelimit import RateLimiter, SlidingWindow
from tests.bot.test_bot import make_bot, say


def test_limit_counts_per_customer_and_slides(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    limiter = RateLimiter(client, Keys(redis_prefix), limit=3, window=10)
    t0 = 1000.0  # the start of a window
    assert [limiter.allow("rest", "a", t0 + i) for i in range(4)] == [True, True, True, False]
    assert limiter.allow("rest", "b", t0 + 4)  # someone else is not limited
    assert limiter.allow("slack", "a", t0 + 4)  # nor is the same id on another platform
    # Just after the window turns, most of the previous window still counts: still limited ...
    assert not limiter.allow("rest", "a", t0 + 10.5)
    # ... and once it has slid past, the customer may write again.
    assert limiter.allow("rest", "a", t0 + 19.9)
    # A second worker (another client object) sees the same counts.
    other = RateLimiter(redis.Redis.from_url(redis_url), Keys(redis_prefix), limit=3, window=10)
    assert [other.allow("rest", "d", t0 + 1) for _ in range(3)] == [True, True, True]
    assert not limiter.allow("rest", "d", t0 + 2)


def test_a_flooding_customer_gets_a_friendly_reply_and_the_transcript_keeps_the_messages(
        redis_url, redis_prefix, demo_engine, demo_kb):
    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb, rate_limit=(3, 60.0))
    replies = [say(bot, f"hello number {i}") for i in range(5)]
    assert all(r[0].sender == "bot" for r in replies[:3])
    assert all("faster than I can read" in r[0].text and r[0].sender == "system" for r in replies[3:])
    customer = [e["text"] for e in bot.store.history("rest:alice") if e["role"] == "customer"]
    assert customer == [f"hello number {i}" for i in range(5)]
    other = bot.handle(InboundMessage("rest", "bob", "bob", "hello")).replies
    assert other[0].sender == "bot"


def test_the_sliding_window_weighs_the_previous_window_by_how_much_of_it_still_overlaps():
    halfway = SlidingWindow(now=90.0, length=60.0)  # in the second window, half of the first still inside
    assert (halfway.slot, halfway.ttl) == (1, 121)
    assert halfway.within(5, 10, limit=10) and not halfway.within(6, 10, limit=10)
    assert halfway.wait() == 30  # the current window empties at 120 s
    assert SlidingWindow(now=119.9, length=60.0).within(9, 100, limit=10)  # the first window all but gone
    assert SlidingWindow(now=120.0, length=60.0).wait() == 60
