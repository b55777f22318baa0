"""Where a customer message's time goes: one observation per stage it passes, through the real bot (issue 29)."""

from __future__ import annotations

from bot.core import BotHooks
from bot.events import QuietObserver, Stage
from bot.messages import InboundMessage
from tests.bot.test_bot import make_bot


class StageRecorder(QuietObserver):
    def __init__(self):
        self.stages: list[tuple[Stage, float]] = []

    def stage(self, name: Stage, seconds: float) -> None:
        self.stages.append((name, seconds))


def receive(bot, text: str, message_id: str):
    return bot.receive(InboundMessage("rest", "alice", "alice", text, message_id=message_id, display_name="Alice"))


def test_an_answered_message_is_timed_once_in_every_stage_in_order(redis_url, redis_prefix, demo_engine, demo_kb):
    observer = StageRecorder()
    bot, delivered = make_bot(redis_url, redis_prefix, demo_engine, demo_kb, hooks=BotHooks(observer=observer))
    for i in range(3):
        observer.stages.clear()
        handled = receive(bot, "how much does standard shipping cost?", f"m{i}")
        assert "$5.95" in handled.replies[0].text and handled.delivered  # answered from the FAQ, pushed out
        assert [name for name, _ in observer.stages] == list(Stage)  # intake, lease, classify, … deliver
        assert all(0 <= seconds < 30 for _, seconds in observer.stages)
    assert len(delivered) == 3


def test_a_stage_a_message_skips_is_not_reported(redis_url, redis_prefix, demo_engine, demo_kb):
    observer = StageRecorder()
    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb, hooks=BotHooks(observer=observer))
    receive(bot, "hello!", "hi")  # small talk: classified, never looked up in the knowledge base
    assert [name for name, _ in observer.stages] == [Stage.INTAKE, Stage.LEASE, Stage.CLASSIFY, Stage.DECIDE,
                                                     Stage.COMMIT, Stage.DELIVER]
    observer.stages.clear()
    bot.handle(InboundMessage("rest", "bob", "bob", "/human", message_id="h"))  # no model; `handle` delivers nothing
    assert [name for name, _ in observer.stages] == [Stage.INTAKE, Stage.LEASE, Stage.DECIDE, Stage.COMMIT]
