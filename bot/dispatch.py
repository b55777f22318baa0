"""Handling each conversation's messages one at a time, in arrival order, exactly once, across processes.

Every incoming message is appended to its conversation's inbox in Redis. Whichever
process holds the conversation's lease drains the inbox in order, storing each message's
replies under the message's uid; the process that received a message waits for that
uid's result and returns it to its caller. So two messages of one conversation arriving
at two workers at once are still handled one after the other, in the order they arrived.

A message moves from the inbox to a one-item `processing` list while it is handled; if
its worker dies, the lease runs out and the next lease holder handles it again before
anything newer (the handler gets the same `uid` again, so it can undo a half-done first
attempt; see `ConversationStore.rewind`). The lease is renewed while a handler runs and
fences the work (`bot.lease`): taking the next message and committing a handled one (its
result, popping it from `processing`, waking its waiter, extending the lease) are each one
Lua step that does nothing unless the worker's lease token is still the current one; a
worker that lost its lease discards its result and leaves the conversation alone.

Nobody has to ask for orphaned work: every intake marks the conversation in the `pending`
sorted set (its own hash tag), and every worker's sweeper (`start_sweeper`) looks, every
second or so, at conversations marked a while ago, takes the lease of any whose lease has
expired with messages still in `processing` or the inbox, and drains them; markers of
conversations with nothing left are removed. A platform message id seen before (a Slack retry, a Telegram redelivery)
is not handled again: the caller gets the first delivery's replies, marked duplicate. A message's
result is kept as long as its platform id is remembered (`retention_s`, default 24 h): the result is
stored after the id, with the same lifetime, so a redelivery that finds the id always finds the replies;
after that the id is new again.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable

import redis

from bot import dispatch_scripts as scripts
from bot import lease as leases
from bot.dispatch_records import EffectsHook, Handled, Handler, HandlingTimeout, Outcome, SweptHook
from bot.effects import Effect, Settle
from bot.errors import REDIS_ERRORS
from bot.events import BotObserver, QuietObserver, Stage
from bot.keys import Keys
from bot.lease import Lease, LeaseLost, Renewer
from bot.messages import InboundMessage, Reply
from common.supervise import Supervised, every

log = logging.getLogger(__name__)
APOLOGY = "Sorry, something went wrong on our side. Please try again in a moment."

# The wake-up list only wakes callers waiting right now (at most `wait_timeout`); the result stays longer.
_DONE_TTL = 600


class Dispatcher:
    def __init__(self, client: redis.Redis, keys: Keys, handler: Handler, *, lease_ms: int = 30_000,
                 retention_s: int = 86_400, wait_timeout: float = 30.0, on_swept: SweptHook | None = None,
                 tracks_delivery: Callable[[InboundMessage], bool] | None = None, observer: BotObserver | None = None,
                 on_effects: EffectsHook | None = None, sweep_min_age: float = 1.0):
        self.redis = client
        self.keys = keys
        self.handler = handler
        self.lease_ms = lease_ms
        # How long a platform message id is remembered and its result kept: one number for both, so a
        # redelivery never finds the id without the replies (and waits for a result that is gone).
        self.retention_s = retention_s
        self.wait_timeout = wait_timeout
        # Called after the commit of a message handled for nobody known to be waiting: drained by the sweeper,
        # or left in `processing` by a dead (or fenced-off) worker. Its result is stored as usual (a caller still
        # waiting picks it up); this is where a push channel delivers it (under `bot.delivery`'s claims, since a
        # live waiter may deliver it too).
        self.on_swept = on_swept
        # The sweeper looks only at conversations whose last intake is at least this old (a fresh one is being
        # drained by the worker that received it).
        self.sweep_min_age = sweep_min_age
        # Which messages have answers someone must push to the platform (Slack, Telegram): those are noted as
        # undelivered at commit until their delivery is settled (`bot.delivery`), and the sweeper hands leftovers
        # to `on_swept`. None: none.
        self.tracks_delivery = tracks_delivery
        # Runs the side effects a handler returned in an `Outcome`, once committed (see there). None: dropped.
        self.on_effects = on_effects
        self.observer = observer or QuietObserver()  # the intake, lease and commit stages' times (metrics)
        self._release = client.register_script(scripts.RELEASE)
        self._enqueue = client.register_script(scripts.ENQUEUE)
        self._next = client.register_script(scripts.NEXT)
        self._commit = client.register_script(scripts.COMMIT)
        self._claim = client.register_script(scripts.CLAIM)
        self._unmark = client.register_script(scripts.UNMARK)
        self._renewer = Renewer(client, lease_ms)
        self._sweeper: Supervised | None = None
        self._stop = threading.Event()
        # Leases this process could not give back because Redis was down; returned once it answers again,
        # so a Redis restart (which keeps the lock keys when it persists) does not stall those conversations.
        self._unreleased: set[tuple[str, str]] = set()

    def handle(self, message: InboundMessage) -> Handled:
        self._release_leftovers()
        uid = uuid.uuid4().hex
        conversation = message.conversation_key
        # A message without a platform id is still keyed (by its own uid, briefly): redis-py retrying the script
        # after a connection drop that hid its success must not queue it twice.
        seen_id, seen_ttl = ((message.message_id, self.retention_s) if message.message_id
                             else (f"uid:{uid}", min(self.retention_s, _DONE_TTL)))
        seen = self.keys.seen(conversation, seen_id)
        started = time.perf_counter()
        first = self._intake(conversation, keys=[seen, self.keys.conv(conversation, "inbox")],
                             args=[uid, seen_ttl, json.dumps({"uid": uid, "message": message.to_dict()})])
        self.observer.stage(Stage.INTAKE, time.perf_counter() - started)
        first_uid = first.decode() if isinstance(first, bytes) else str(first) if first is not None else None
        if first_uid == uid:  # our own intake, retried by the client after it had succeeded
            return Handled(self._wait(uid, message), uid=uid, conversation=conversation)
        if first_uid is not None:  # delivered before: answer with (or wait for) the first delivery's replies
            return Handled(self._wait(first_uid, message), duplicate=True, uid=first_uid, conversation=conversation)
        return Handled(self._wait(uid, message), uid=uid, conversation=conversation)

    def _intake(self, conversation: str, keys: list[str], args: list) -> object:
        """Mark the conversation pending, then queue the message (`scripts.ENQUEUE`): one round trip.

        Marked first, in a pipeline rather than the script (the pending index is another slot): a
        marker without work is harmless (the sweeper drops it), work without a marker would wait for
        the conversation's next message. Both are safe to repeat, so a script Redis has not loaded
        yet (NOSCRIPT: restarted, or a fresh node) is loaded and the pair sent again.
        """
        def send() -> object:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(self.keys.pending(), {conversation: time.time()})
            pipe.evalsha(self._enqueue.sha, len(keys), *keys, *args)
            return pipe.execute()[1]

        try:
            return send()
        except redis.exceptions.NoScriptError:
            self.redis.script_load(self._enqueue.script)
            return send()

    def _wait(self, uid: str, message: InboundMessage) -> list[Reply]:
        deadline = time.monotonic() + self.wait_timeout
        conversation = message.conversation_key
        lock = self.keys.conv(conversation, "lock")
        mine: dict[str, list[Reply]] = {}
        while True:
            token = uuid.uuid4().hex  # the lease free: drain the conversation ourselves, ours among its messages
            started = time.perf_counter()
            if self.redis.set(lock, token, nx=True, px=self.lease_ms):
                self._drain_held(conversation, Lease(lock, token), results=mine, took=time.perf_counter() - started)
            if uid in mine:  # handled by this very call: no need to read it back
                return mine[uid]
            stored = self.redis.get(self.keys.result(conversation, uid))
            if stored is not None:
                return [Reply.from_dict(r) for r in json.loads(stored)]
            if time.monotonic() > deadline:
                raise HandlingTimeout(f"message {uid} in {conversation} not handled within {self.wait_timeout} s")
            # Wake as soon as the lease holder finishes our message; re-check the lease otherwise.
            self.redis.blpop([self.keys.done(conversation, uid)], timeout=0.25)

    def _drain_held(self, conversation: str, lease: Lease, *, swept: bool = False,
                    results: dict[str, list[Reply]] | None = None, took: float = 0.0) -> bool:
        """Handle the conversation's messages in order while `lease` is ours; True once nothing is left.

        `results` collects the replies committed here by uid (a waiter then needs no read-back); `took`: lease seconds.
        """
        inbox = self.keys.conv(conversation, "inbox")
        processing = self.keys.conv(conversation, "processing")
        self._renewer.hold(lease)
        released = False
        try:
            if swept:
                self._run_leftover_effects(conversation)
            while True:
                started = time.perf_counter()
                got = self._next(keys=[lease.key, processing, inbox], args=[lease.token])
                took += time.perf_counter() - started
                if not got:
                    released = True  # by the script, with nothing left
                    return True
                if int(got[0]) == -1:
                    log.warning("lease lost between messages; leaving the conversation to its new holder",
                                extra={"conversation": conversation})
                    return False
                recovered, item = int(got[0]) == 1, json.loads(got[1])
                uid = item["uid"]
                if recovered and self.redis.get(self.keys.result(conversation, uid)) is not None:
                    self._commit_fenced(lease, conversation, uid, "")
                    continue
                message = InboundMessage.from_dict({**item["message"], "uid": uid})
                self.observer.stage(Stage.LEASE, took)
                took = 0.0
                replies, effects = self._run_handler(conversation, lease, message)
                if replies is None or not self._commit_handled(lease, conversation, item, message, replies, effects):
                    # Someone else holds the conversation now and handles this message again: our result is
                    # discarded, and we touch nothing more of this conversation.
                    lease.lost.set()
                    log.warning("lease lost while handling a message; its result is discarded",
                                extra={"conversation": conversation, "uid": uid})
                    return False
                if results is not None:
                    results[uid] = replies
                if (swept or recovered) and self.on_swept is not None:
                    try:
                        self.on_swept(uid, message, replies)  # delivery of swept results: see `on_swept`
                    except Exception:
                        log.exception("on_swept failed for a message in %s", conversation)
        finally:
            self._renewer.drop(lease)
            try:
                if not released:
                    self._release(keys=[lease.key], args=[lease.token])
            except REDIS_ERRORS:
                self._unreleased.add((lease.key, lease.token))
                raise

    def _run_handler(self, conversation: str, lease: Lease,
                     message: InboundMessage) -> tuple[list[Reply] | None, list[Effect]]:
        """The handler's replies and effects, with its writes fenced by `lease`; None replies: the lease was lost."""
        fence = leases.current.set(lease)
        try:
            outcome = self.handler(message)
        except LeaseLost:
            return None, []
        except REDIS_ERRORS:
            raise  # the message stays in `processing` and is handled again
        except Exception:  # a bug must not wedge the conversation behind one message
            log.exception("handler failed for a message in %s", conversation)
            return [Reply(APOLOGY, sender="system")], []
        finally:
            leases.current.reset(fence)
        return (outcome.replies, outcome.effects) if isinstance(outcome, Outcome) else (outcome, [])

    def _commit_handled(self, lease: Lease, conversation: str, item: dict, message: InboundMessage,
                        replies: list[Reply], effects: list[Effect]) -> bool:
        """The commit stage: replies and effects committed under `lease` (False: it is lost), then the effects run."""
        started = time.perf_counter()
        left = json.dumps({"message": item["message"], "effects": [e.to_dict() for e in effects]}) if effects else ""
        if not self._commit_fenced(lease, conversation, message.uid, json.dumps([r.to_dict() for r in replies]),
                                   json.dumps(item) if self._tracked(message) else "", left):
            return False
        if effects:
            self._run_effects(conversation, message.uid, message, effects)
        self.observer.stage(Stage.COMMIT, time.perf_counter() - started)
        return True

    def _tracked(self, message: InboundMessage) -> bool:
        """Whether the message's answers are noted undelivered at commit, for the sweeper to push if need be."""
        return self.on_swept is not None and self.tracks_delivery is not None and self.tracks_delivery(message)

    def _commit_fenced(self, lease: Lease, conversation: str, uid: str, replies_json: str, item_json: str = "",
                       effects_json: str = "") -> bool:
        """Store the replies ('' = stored before), wake the waiter, pop `processing`: only while `lease` is ours."""
        return bool(self._commit(
            keys=[lease.key, self.keys.conv(conversation, "processing"), self.keys.result(conversation, uid),
                  self.keys.done(conversation, uid), self.keys.conv(conversation, "undelivered"),
                  self.keys.conv(conversation, "effects")],
            args=[lease.token, replies_json, self.retention_s, min(self.retention_s, _DONE_TTL), self.lease_ms,
                  item_json, uid, effects_json]))

    def _run_effects(self, conversation: str, uid: str, message: InboundMessage, effects: list[Effect]) -> None:
        """Run a committed message's side effects, dropping them from the outbox as they are done.

        Still under the lease, which keeps the sweeper away while they run. The effects that stay
        in Redis (counters: `external` false) run first, together (`on_effects` may batch them into
        one round trip); the outbox then keeps only the external ones (staff notifications), each
        dropped once sent. A worker dying part-way leaves the rest, and only the rest, to the
        sweeper: each effect runs once, twice only for a crash between it and the write after it.
        """
        key = self.keys.conv(conversation, "effects")
        internal = [e for e in effects if not e.external]
        external = [e for e in effects if e.external]
        if internal and not external:  # the common case: counters, dropped from the outbox in their round trip
            self._call_effects(conversation, internal, settle=lambda pipe: pipe.hdel(key, uid))
            return
        if internal:
            self._call_effects(conversation, internal)
        for index in range(len(external) + 1):
            rest = external[index:]
            if rest and (index > 0 or internal):  # what is left, unless that is what the commit stored
                self.redis.hset(key, uid, json.dumps({"message": message.to_dict(),
                                                        "effects": [e.to_dict() for e in rest]}))
            elif not rest:
                self.redis.hdel(key, uid)
                return
            self._call_effects(conversation, rest[:1])

    def _call_effects(self, conversation: str, effects: list[Effect], settle: Settle | None = None) -> None:
        if self.on_effects is None:
            if settle is not None:
                settle(self.redis)
            return
        try:
            self.on_effects(effects, settle)
        except Exception:
            log.exception("side effects failed for a message in %s", conversation)

    def _run_leftover_effects(self, conversation: str) -> None:
        """Effects committed by a worker that died before running them (see `_run_effects`)."""
        for raw_uid, raw in self.redis.hgetall(self.keys.conv(conversation, "effects")).items():
            uid = raw_uid.decode() if isinstance(raw_uid, bytes) else str(raw_uid)
            stored = json.loads(raw)
            message = InboundMessage.from_dict({**stored["message"], "uid": uid})
            self._run_effects(conversation, uid, message, [Effect.from_dict(e) for e in stored["effects"]])

    def _deliver_leftovers(self, conversation: str) -> bool:
        """Hand answers committed but never recorded as delivered to `on_swept`; True while some remain.

        Their worker died between the commit and the post (or is posting right now: the delivery
        claim keeps that one from being posted twice, and its note stays until the claim is settled).
        """
        undelivered = self.keys.conv(conversation, "undelivered")
        entries = self.redis.hgetall(undelivered)
        if not entries or self.on_swept is None:
            return False
        left = False
        for raw_uid, raw in entries.items():
            uid = raw_uid.decode() if isinstance(raw_uid, bytes) else str(raw_uid)
            stored = self.redis.get(self.keys.result(conversation, uid))
            if stored is not None:
                item = json.loads(raw)
                message = InboundMessage.from_dict({**item["message"], "uid": uid})
                try:
                    self.on_swept(uid, message, [Reply.from_dict(r) for r in json.loads(stored)])
                except Exception:
                    log.exception("on_swept failed for a message in %s", conversation)
            if (stored is not None and not self.redis.exists(self.keys.delivery(uid, "sent"))
                    and self.redis.exists(self.keys.delivery(uid, "claim"))):
                left = True  # someone is posting it now: look again next time
            else:
                self.redis.hdel(undelivered, uid)  # sent, given up (marked for staff), or expired
        return left

    # ------------------------------------------------------------------ the sweeper
    def sweep_once(self, limit: int = 100) -> int:
        """Drain conversations whose lease expired with work left behind; return how many were drained."""
        pending = self.keys.pending()
        entries = self.redis.zrangebyscore(pending, "-inf", time.time() - self.sweep_min_age, start=0, num=limit,
                                           withscores=True)
        drained = 0
        for member, score in entries:
            if self._stop.is_set():
                break
            conversation = member.decode() if isinstance(member, bytes) else str(member)
            lock = self.keys.conv(conversation, "lock")
            token = uuid.uuid4().hex
            state = self._claim(keys=[lock, self.keys.conv(conversation, "processing"),
                                      self.keys.conv(conversation, "inbox"),
                                      self.keys.conv(conversation, "undelivered"),
                                      self.keys.conv(conversation, "effects")], args=[token, self.lease_ms])
            state = state.decode() if isinstance(state, bytes) else str(state)
            if state == "busy":
                continue  # a live worker has it (or a dead one's lease has not run out yet: next time)
            if state == "claimed":
                log.info("taking over a conversation whose worker left work behind",
                         extra={"conversation": conversation})
                drained += 1
                if not self._drain_held(conversation, Lease(lock, token), swept=True):
                    continue
                if self._deliver_leftovers(conversation):
                    continue  # stays marked until every answer is settled
            self._unmark(keys=[pending], args=[conversation, repr(float(score))])
        return drained

    def start_sweeper(self, interval: float = 1.0) -> None:
        """Sweep in a background thread every `interval` seconds (jittered) until `close`.

        Supervised (common.supervise): a sweep that fails (Redis away, a cluster error, a value it cannot
        read) is logged and the thread starts again with backoff, never silently gone."""
        if self._sweeper is not None:
            return
        self._stop.clear()
        self._sweeper = Supervised("sweeper", every(lambda: interval * random.uniform(0.8, 1.2), self.sweep_once),
                                   stop=self._stop, stale_after=max(60.0, 3 * interval)).start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the sweeper (a message it is handling is finished first, up to `timeout`)."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout)
            self._sweeper = None

    def _release_leftovers(self) -> None:
        for lock, token in list(self._unreleased):
            self._release(keys=[lock], args=[token])
            self._unreleased.discard((lock, token))
