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


def test_an_answered_message_costs_no_more_redis_round_trips_than_counted(redis_url, redis_prefix, demo_engine,
                                                                         demo_kb):
    """A guard on the round trips per answered message, every one a request and its reply (a pipeline or script is
    one): 19 on 2026-12-06, 13 since intake, a message's start, the effects' settling and the delivery claim each
    share one (issue 29's budget: 15)."""
    import redis

    from bot.core import Bot
    from tests.support.outputs import outputs

    pool = redis.ConnectionPool.from_url(redis_url)
    sent: list[str] = []

    class Counting(pool.connection_class):  # the real connection; each send is one request to Redis and its reply
        def send_packed_command(self, command, check_health=True):
            raw = bytes(command if isinstance(command, bytes) else b"".join(command)).decode(errors="replace")
            sent.append(" ".join(word for word in raw.split("\r\n") if word.isupper())[:80])  # the command names
            return super().send_packed_command(command, check_health)

    pool.connection_class = Counting
    bot = Bot(redis.Redis(connection_pool=pool), demo_engine, demo_kb, prefix=redis_prefix,
              hooks=BotHooks(output=outputs(lambda *_: None)))
    counts = []
    for i in range(4):  # a conversation's first message opens it; the later ones are the steady state
        sent.clear()
        handled = receive(bot, "how much does standard shipping cost?", f"rt{i}")
        assert "$5.95" in handled.replies[0].text
        counts.append(len(sent))
    assert max(counts[1:]) <= 13, (counts, "; ".join(sent))
