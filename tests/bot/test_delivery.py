"""Delivery claims: a platform's redelivery is answered only when the first answer never went out."""

from __future__ import annotations

import time

import redis

from bot.delivery import DeliveryClaims
from bot.dispatch import Dispatcher
from bot.keys import Keys
from bot.messages import InboundMessage, Reply


class Worker:
    """One process's dispatcher and delivery claims on the shared Redis."""

    def __init__(self, redis_url: str, prefix: str):
        client = redis.Redis.from_url(redis_url)
        self.dispatcher = Dispatcher(client, Keys(prefix), lambda m: [Reply(f"re: {m.text}")])
        self.claims = DeliveryClaims(client, Keys(prefix))

    def handle(self, message: InboundMessage):
        return self.dispatcher.handle(message)

    def claim_delivery(self, handled, **options) -> bool:
        return self.claims.claim(handled, **options)

    def finish_delivery(self, handled, sent: bool) -> None:
        self.claims.finish(handled, sent)


def dispatcher(redis_url: str, prefix: str) -> Worker:
    return Worker(redis_url, prefix)


def message(message_id: str) -> InboundMessage:
    return InboundMessage("telegram", "42", "7", "hello", message_id=message_id)


def test_answered_message_redelivered_is_not_sent_again(redis_url, redis_prefix):
    d = dispatcher(redis_url, redis_prefix)
    first = d.handle(message("a"))
    assert d.claim_delivery(first)
    d.finish_delivery(first, sent=True)
    again = d.handle(message("a"))
    assert again.duplicate and again.replies == first.replies
    assert not d.claim_delivery(again)


def test_failed_send_leaves_the_answer_to_the_redelivery(redis_url, redis_prefix):
    d = dispatcher(redis_url, redis_prefix)
    first = d.handle(message("b"))
    assert d.claim_delivery(first)
    d.finish_delivery(first, sent=False)
    again = d.handle(message("b"))
    assert again.duplicate and d.claim_delivery(again)  # sent now, once
    d.finish_delivery(again, sent=True)
    assert not d.claim_delivery(d.handle(message("b")))


def test_sender_that_died_is_replaced_once_its_claim_runs_out(redis_url, redis_prefix):
    d = dispatcher(redis_url, redis_prefix)
    first = d.handle(message("c"))
    assert d.claim_delivery(first, hold_seconds=1)  # ... and the process dies before sending
    other_worker = dispatcher(redis_url, redis_prefix)
    again = other_worker.handle(message("c"))
    assert not other_worker.claim_delivery(again)  # someone may still be sending: do not double up
    time.sleep(1.2)
    assert other_worker.claim_delivery(again)
    assert not d.claim_delivery(again)  # only one of the two redeliveries sends
