"""Satisfaction ratings after a hand-off (bot.csat), through `POST /chat`, the staff routes and `/admin/stats`."""

from __future__ import annotations

import pytest

from bot.csat import parse_rating
from tests.support.rest import CHAT_AUTH

AUTH = {"Authorization": "Bearer desk-token-0123456789abcdef0123456789"}  # desk_client's admin token


@pytest.mark.parametrize("text, rating", [
    ("4", 4), (" 5 ", 5), ("3/5", 3), ("2 out of 5", 2), ("1 star", 1), ("5 stars!", None), ("rating: 4", 4),
    ("⭐⭐⭐", 3), ("★★★★★", 5), ("0", None), ("6", None), ("10", None), ("4 items please", None),
    ("order 4", None), ("", None),
])
def test_what_reads_as_a_rating(text, rating):
    assert parse_rating(text) == rating


def chat(client, sender: str, text: str) -> list[dict]:
    response = client.post("/chat", json={"sender": sender, "message": text}, headers=CHAT_AUTH)
    assert response.status_code == 200, response.text
    return response.json()["replies"]


def hand_off(client, sender: str, agent: str) -> str:
    assert "colleague" in chat(client, sender, "/human")[0]["text"]
    escalation = next(r["id"] for r in client.get("/admin/escalations", headers=AUTH).json()
                      if r["user_id"] == sender and r["status"] == "open")
    assert client.post(f"/admin/escalations/{escalation}/claim", json={"agent": agent}, headers=AUTH).status_code == 200
    assert client.post(f"/admin/escalations/{escalation}/reply", json={"agent": agent, "text": "Sorted!"},
                       headers=AUTH).status_code == 200
    assert client.post(f"/admin/escalations/{escalation}/resolve", json={"agent": agent},
                       headers=AUTH).status_code == 200
    return escalation


def test_a_rating_after_resolution_is_stored_thanked_and_in_stats(desk_client):
    client = desk_client()
    stats = client.get("/admin/stats", headers=AUTH).json()
    assert stats["csat"] == {"count": 0, "average": None, "by_agent": {}}

    escalation = hand_off(client, "rater", "sam")
    transcript = client.get(f"/admin/escalations/{escalation}", headers=AUTH).json()["transcript"]
    asked = transcript[-1]
    assert "rate" in asked["text"] and asked["suggestions"] == ["1", "2", "3", "4", "5"]  # buttons where shown

    thanks = chat(client, "rater", "4")
    assert len(thanks) == 1 and "Thank you for your rating" in thanks[0]["text"]
    record = next(r for r in client.get("/admin/escalations", headers=AUTH).json() if r["id"] == escalation)
    assert record["rating"] == 4
    assert client.get("/admin/stats", headers=AUTH).json()["csat"] == {
        "count": 1, "average": 4.0, "by_agent": {"sam": {"count": 1, "average": 4.0}}}
    # Asked once, answered once: a later "5" is an ordinary message, not a second rating.
    assert "Thank you for your rating" not in chat(client, "rater", "5")[0]["text"]
    assert client.get("/admin/stats", headers=AUTH).json()["csat"]["count"] == 1

    # Another customer, another agent; a question before the rating is answered as usual.
    hand_off(client, "second", "kim")
    answer = chat(client, "second", "how much does standard shipping cost?")
    assert "Thank you for your rating" not in answer[0]["text"]
    assert "Thank you for your rating" in chat(client, "second", "2 out of 5")[0]["text"]
    daily = client.get("/admin/stats/daily?days=3", headers=AUTH).json()
    assert [d["csat_count"] for d in daily["days"]][-1] == 2
    csat = client.get("/admin/stats", headers=AUTH).json()["csat"]
    assert csat == {"count": 2, "average": 3.0, "by_agent": {"kim": {"count": 1, "average": 2.0},
                                                             "sam": {"count": 1, "average": 4.0}}}


def test_a_number_without_a_pending_question_is_not_a_rating(desk_client):
    client = desk_client()
    chat(client, "plain", "hello")
    assert "Thank you for your rating" not in chat(client, "plain", "3")[0]["text"]
    assert client.get("/admin/stats", headers=AUTH).json()["csat"]["count"] == 0


def test_daily_numbers_keep_each_day_apart(redis_url, redis_prefix):
    import redis

    from bot.keys import Keys
    from bot.stats import DAY, BotStats

    now = [1_780_000_000.0]  # a fixed moment; "yesterday" is one DAY before it
    stats = BotStats(redis.Redis.from_url(redis_url), Keys(redis_prefix), clock=lambda: now[0])
    now[0] -= DAY
    stats.message("rest:a")
    stats.escalation("rest:a")
    stats.csat("sam", 2)
    now[0] += DAY
    for conversation in ("rest:b", "rest:c"):
        stats.message(conversation)
    stats.csat("sam", 5)
    stats.csat("kim", 4)
    yesterday, today = stats.daily(2)
    assert (yesterday["messages"], yesterday["escalation_rate"], yesterday["containment_rate"]) == (1, 1.0, 0.0)
    assert (yesterday["csat_count"], yesterday["csat_average"]) == (1, 2.0)
    assert (today["messages"], today["escalation_rate"], today["csat_count"], today["csat_average"]) == (2, 0.0, 2, 4.5)
    assert [d["messages"] for d in stats.daily(5)] == [0, 0, 0, 1, 2]
    assert stats.daily(5)[0]["containment_rate"] is None  # no conversations that day: no rate, not 0
    assert stats.summary(days=2)["csat"] == {"count": 3, "average": 3.67, "by_agent": {
        "kim": {"count": 1, "average": 4.0}, "sam": {"count": 2, "average": 3.5}}}
    assert stats.summary(days=1)["csat"]["count"] == 2
