"""Business hours (bot.hours): parsing, open/closed at fixed moments, and an out-of-hours hand-off through
the real bot and Redis (clock injected) and through the real app (`POST /chat`, `/admin/escalations`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from bot.core import Bot
from bot.hours import DAYS, BusinessHours, HoursError
from bot.messages import InboundMessage
from tests.support.rest import CHAT_AUTH

LONDON = "Europe/London"


def at(text: str) -> datetime:
    """A UTC moment, "2026-11-28 10:00" (a Saturday)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_weekday_hours_open_and_closed():
    hours = BusinessHours.parse("Mon-Fri 09:00-17:30", LONDON)
    assert hours.is_open(at("2026-11-30 09:00"))  # Monday, London is on UTC in winter
    assert hours.is_open(at("2026-11-30 17:29"))
    assert not hours.is_open(at("2026-11-30 17:30"))
    assert not hours.is_open(at("2026-11-30 08:59"))
    assert not hours.is_open(at("2026-11-28 12:00"))  # Saturday
    assert hours.next_opening(at("2026-11-28 12:00")) == datetime(2026, 11, 30, 9, tzinfo=hours.tz)
    assert hours.describe_next(at("2026-11-28 12:00"))["day"] == "Monday"
    assert hours.describe_next(at("2026-11-30 20:00"))["day"] == "tomorrow"
    assert hours.describe_next(at("2026-11-30 07:00")) | {"at": ""} == {
        "day": "today", "time": "09:00", "timezone": LONDON, "at": ""}
    assert hours.next_opening(at("2026-11-30 10:00")) == at("2026-11-30 10:00")  # open: now


def test_summer_time_and_the_zone_are_the_tz_databases_business():
    hours = BusinessHours.parse("Mon-Fri 09:00-17:30", LONDON)
    assert not hours.is_open(at("2026-07-06 07:30"))  # Monday 08:30 BST
    assert hours.is_open(at("2026-07-06 08:00"))  # 09:00 BST
    assert not hours.is_open(at("2026-07-06 16:30"))  # 17:30 BST: closed
    tokyo = BusinessHours.parse("Mon-Sun 08:00-20:00", "Asia/Tokyo")
    assert tokyo.is_open(at("2026-11-28 00:00")) and not tokyo.is_open(at("2026-11-28 12:00"))


def test_overnight_and_several_ranges_and_week_wrap():
    hours = BusinessHours.parse("Fri-Mon 20:00-02:00, Wed 10:00-12:00", "UTC")
    assert hours.is_open(at("2026-11-28 01:00"))  # Saturday 01:00 belongs to Friday's evening
    assert hours.is_open(at("2026-11-30 21:00"))  # Monday evening (Fri-Mon wraps round the week)
    assert not hours.is_open(at("2026-12-01 03:00"))  # Tuesday
    assert hours.next_opening(at("2026-12-01 03:00")) == at("2026-12-02 10:00")  # Wednesday
    assert BusinessHours.parse("", "UTC") is None  # unset: always open


@pytest.mark.parametrize("spec, complaint", [
    ("Mon-Fry 09:00-17:00", "'Fry'"), ("weekdays", "cannot read 'weekdays'"), ("Mon 25:00-26:00", "25:00"),
    ("Mon 09:00-09:00", "same time"), ("Mon-Fri 09:00-17:00,, ", "cannot read"),
])
def test_bad_hours_are_refused_naming_the_part(spec, complaint):
    with pytest.raises(HoursError, match=complaint):
        BusinessHours.parse(spec, "UTC")


def test_a_bad_time_zone_is_named():
    with pytest.raises(HoursError, match="Mars/Olympus"):
        BusinessHours.parse("Mon 09:00-10:00", "Mars/Olympus")


def test_a_closed_hour_hand_off_queues_and_names_the_next_opening(redis_url, redis_prefix, demo_engine, demo_kb):
    now = at("2026-11-28 22:15")  # Saturday night
    bot = Bot(redis.Redis.from_url(redis_url), demo_engine, demo_kb, prefix=redis_prefix,
              hours=BusinessHours.parse("Mon-Fri 09:00-17:30", LONDON), clock=lambda: now.timestamp())
    replies = bot.handle(InboundMessage("rest", "night-owl", "night-owl", "/human", display_name="Ada")).replies
    assert replies[0].text == ("Our team is away right now; they're back Monday at 09:00 (Europe/London) "
                               "and will pick this up then.")
    (record,) = bot.queue.list(status="open")  # queued all the same
    assert record.out_of_hours and record.display_name == "Ada"
    again = bot.handle(InboundMessage("rest", "night-owl", "night-owl", "hello? anyone?")).replies
    assert "back Monday at 09:00" in again[0].text  # waiting, and not promised "shortly"

    now = at("2026-11-30 10:00")  # Monday morning: staff are in
    replies = bot.handle(InboundMessage("rest", "early-bird", "early-bird", "/human")).replies
    assert "shortly" in replies[0].text
    record = next(r for r in bot.queue.list() if r.user_id == "early-bird")
    assert not record.out_of_hours


def test_out_of_hours_through_the_app_and_the_admin_list(desk_client):
    tomorrow = DAYS[(datetime.now(UTC) + timedelta(days=1)).weekday()].title()
    client = desk_client(FRONTDESK_BUSINESS_HOURS=f"{tomorrow} 09:00-17:00", FRONTDESK_TIMEZONE="UTC")
    reply = client.post("/chat", json={"sender": "late", "message": "/human", "name": "Lee"},
                        headers=CHAT_AUTH).json()["replies"]
    assert "back tomorrow at 09:00 (UTC)" in reply[0]["text"]
    admin = {"Authorization": "Bearer desk-token-0123456789abcdef0123456789"}  # desk_client's admin token
    (item,) = client.get("/admin/escalations", headers=admin).json()
    assert item["out_of_hours"] is True and item["display_name"] == "Lee" and item["status"] == "open"
