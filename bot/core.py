"""The bot: `handle(message) -> replies`, the one entry point every channel uses, plus staff actions.

Per message (under the conversation's lease, see `bot.dispatch`): record it, and unless
staff hold the conversation, classify it (intent, out of scope, sentiment), check the
escalation rules, and answer from templates, canned intent answers or the FAQ, with an
honest fallback when nothing fits. Staff claim, reply to and resolve escalations through
the methods at the bottom; every step lands in the transcript with who did it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from bot import csat
from bot.channels import Answerer, Classifier, OutputChannel
from bot.dispatch import Dispatcher, Handled, Outcome
from bot.errors import REDIS_ERRORS
from bot.escalation import EscalationRules
from bot.hours import BusinessHours
from bot.keys import Keys
from bot.messages import InboundMessage, Reply
from bot.outbox import Outbox
from bot.queue import EscalationError, EscalationQueue
from bot.ratelimit import RateLimiter
from bot.review import ReviewInbox
from bot.roles import RoleLease
from bot.stats import BotStats
from bot.store import ConversationStore
from bot.templates import Templates

log = logging.getLogger(__name__)

SMALL_TALK = ("greet", "thanks", "goodbye", "bot_capabilities")
CHAT_COMMANDS = {"/start": "greet", "/help": "bot_capabilities"}
ADMIN_COMMANDS = ("/reload", "/queue")
STATS_OPS = ("message", "intent", "faq_answer", "fallback", "escalation", "csat")  # `BotStats` calls an effect may make
# The side effects of the message being handled on this thread (see `Bot._later`); None outside a dispatcher.
_EFFECTS: ContextVar[list[dict] | None] = ContextVar("frontdesk_effects", default=None)


@dataclass
class BotHooks:
    """How the bot reaches outside itself; the wiring layer fills these in."""

    output: Callable[[str], OutputChannel | None] | None = None  # channel name -> its push output, if any
    on_escalation: list[Callable[[dict, list[dict]], None]] = field(default_factory=list)  # (record, transcript)
    on_customer_message: list[Callable[[dict, str], None]] = field(default_factory=list)  # to the agent
    on_status_change: list[Callable[[dict], None]] = field(default_factory=list)  # claimed / resolved record
    on_event: Callable[[str, dict], None] | None = None  # metrics: ("fallback"|"escalation"|..., details)
    admin_actions: dict[str, Callable[[], str]] = field(default_factory=dict)  # "/reload" -> summary text


class Bot:
    def __init__(self, client: redis.Redis, nlu: Classifier, kb: Answerer | None, *, prefix: str = "frontdesk",
                 templates: Templates | None = None,
                 rules: EscalationRules | None = None, admins: dict[str, set[str]] | None = None,
                 hooks: BotHooks | None = None, rate_limit: tuple[int, float] = (20, 60.0), lease_ms: int = 15_000,
                 dedup_seconds: int = 86_400, hours: BusinessHours | None = None,
                 clock: Callable[[], float] = time.time, escalation_retention_s: int = 30 * 86_400):
        self.keys = Keys(prefix)
        self.redis = client
        self.store = ConversationStore(client, self.keys)
        self.queue = EscalationQueue(client, self.keys, retention_s=escalation_retention_s)
        self.outbox = Outbox(client, self.keys)
        self.rate_limiter = RateLimiter(client, self.keys, limit=rate_limit[0], window=rate_limit[1])
        # The console's numbers; never fails a message. Customers' unanswered texts go with the escalation retention.
        self.stats = BotStats(client, self.keys, text_ttl=escalation_retention_s)
        self.hours = hours  # staff's business hours (bot.hours); None: always open
        self.clock = clock  # injectable, so a test can hand off at a chosen hour
        self.nlu = nlu
        self.kb = kb
        self.templates = templates or Templates.load()
        self.rules = rules or EscalationRules()
        self.admins = admins or {}
        self.hooks = hooks or BotHooks()
        self.dispatcher = Dispatcher(client, self.keys, self._process, lease_ms=lease_ms,
                                     retention_s=dedup_seconds)
        self.dispatcher.on_effect = self._run_effect
        self.review = ReviewInbox(client, self.keys)  # what the bot was unsure of, for staff to label (bot.review)

    def close(self) -> None:
        """Stop the sweeper and the live-delivery listener (the rest holds no threads or connections)."""
        self.dispatcher.close()
        self.outbox.close()

    def role(self, name: str, ttl_s: float) -> RoleLease:
        """This process's claim on a role only one worker may play at a time (see `bot.roles`)."""
        return RoleLease(self.redis, self.keys, name, ttl_s)

    # ------------------------------------------------------------------ customers
    def handle(self, message: InboundMessage) -> Handled:
        """Replies for one inbound message; a redelivered platform message is answered once only."""
        started = time.perf_counter()
        try:
            handled = self.dispatcher.handle(message)
            # Ids and counts only: message text is personal data and never logged.
            log.info("message handled", extra={"conversation": message.conversation_key, "channel": message.channel,
                                               "replies": len(handled.replies), "duplicate": handled.duplicate,
                                               "ms": round((time.perf_counter() - started) * 1000, 1)})
            return handled
        except REDIS_ERRORS as exc:
            log.warning("redis unavailable while handling a message (%s)", type(exc).__name__)
            self._event("redis_error", {})
            return Handled([Reply(self.templates.say("unavailable"), sender="system")])

    def receive(self, message: InboundMessage) -> Handled:
        """The one entry point of every channel: intake, ordered handling, delivery, acknowledgement, metrics.

        Returns once the message is handled. For a channel with a registered output (Slack,
        Telegram) the replies have then been sent through it, once per message however often
        the platform delivers it (`handled.delivered`: True, False when the platform refused,
        None when they were sent before or by someone else). Channels without one (REST, web
        chat) send `handled.replies` back themselves. A message Redis did not take (`queued`
        false) is answered only with the apology, never sent to a push platform: that platform
        is told to deliver it again instead.
        """
        handled = self.handle(message)
        output = self._output(message.channel)
        if output is not None and handled.queued:
            handled.delivered = self._deliver(message, handled, output)
        if handled.queued and not handled.duplicate:
            self._event("message", {"channel": message.channel})
        return handled

    def _output(self, channel: str) -> OutputChannel | None:
        return self.hooks.output(channel) if self.hooks.output is not None else None

    def _deliver(self, message: InboundMessage, handled: Handled, output: OutputChannel | None,
                 publish: bool = False) -> bool | None:
        """Send `handled.replies` through `output` unless they were sent already; whether they arrived.

        Exactly once per message uid, under the delivery claim (`claim_delivery`): a platform's
        redelivery, a waiter and the sweeper may all hold the same result. With `publish`, each
        reply also goes out on the live outbox (a web page connected to any worker shows it).
        A refusal (after the output's own retries) stops the rest and is marked in the
        transcript (`delivered: false`) so staff see it; the claim is freed for a redelivery.
        """
        if not self.claim_delivery(handled):
            return None  # sent already, or being sent by whoever else holds the claim
        sent = False
        try:
            for index, reply in enumerate(handled.replies):
                if publish:
                    self.outbox.publish(message.conversation_key, reply)
                if output is not None:  # the first reply answers the message (a group may quote it)
                    output.send(message.conversation_id, reply, message.message_id if index == 0 else None)
            sent = True
        except Exception as exc:  # the message text is personal data: only the reason is logged
            log.warning("delivering an answer to %s failed (%s)", message.channel, type(exc).__name__)
            try:
                self.store.append(message.conversation_key, "system",
                                  f"not delivered: {message.channel} refused the bot's answer after retries",
                                  delivered=False)
            except redis.RedisError:
                log.warning("an undelivered answer could not be recorded: Redis unavailable")
        finally:
            self.finish_delivery(handled, sent)
        return sent

    def claim_delivery(self, handled: Handled) -> bool:
        """For push channels (Slack, Telegram): send `handled.replies` only when this returns True.

        A platform redelivers a message when it is not sure we answered; this tells a
        redelivery whose answer never went out (a crash between answering and sending)
        from one that was answered. Call `finish_delivery` afterwards.
        """
        try:
            return self.dispatcher.claim_delivery(handled)
        except redis.RedisError:
            return not handled.duplicate

    def finish_delivery(self, handled: Handled, sent: bool) -> None:
        try:
            self.dispatcher.finish_delivery(handled, sent)
        except redis.RedisError:
            log.warning("delivery of a handled message not recorded: Redis unavailable")

    def deliver_swept(self, uid: str, message: InboundMessage, replies: list[Reply]) -> bool:
        """`Dispatcher.on_swept`: deliver the replies of a message handled for nobody known to be waiting.

        That is a message a dead worker left behind, handled by this process's sweeper (or by
        a waiter that found it in `processing`). Its receiver is gone, so nobody would send its
        answer: here it goes out like a staff message, published on the outbox (a web page
        connected to any worker shows it live) and sent through the channel's output (push
        channels; pull channels have none), under the same delivery claim as `receive`, so a
        live waiter that also got the result does not send it again. False when the channel
        refused it (marked in the transcript for staff) or it was not ours to send.
        """
        if not replies:
            return True  # staff hold the conversation: nothing of the bot's to send
        handled = Handled(replies, uid=uid, conversation=message.conversation_key)
        return bool(self._deliver(message, handled, self._output(message.channel), publish=True))

    def _process(self, message: InboundMessage) -> Outcome:
        """`Dispatcher`'s handler: the replies, plus the side effects to commit with them (see `_later`)."""
        effects: list[dict] = []
        collecting = _EFFECTS.set(effects)
        try:
            replies = self._handle_message(message)
        finally:
            _EFFECTS.reset(collecting)
        return Outcome(replies, effects)

    def _handle_message(self, message: InboundMessage) -> list[Reply]:
        conversation = message.conversation_key
        if self.store.begin(conversation, message.uid):
            log.warning("re-handling a message whose first attempt died", extra={"conversation": conversation})
        meta = self.store.start(conversation, message.channel, message.user_id, message.display_name)
        self.store.append(conversation, "customer", message.text, user_id=message.user_id, uid=message.uid or None)
        self._later("stats", op="message", args=[conversation])
        if not self.rate_limiter.allow(message.channel, message.user_id, uid=message.uid):
            # Kept in the transcript for staff, but no model time spent and no escalation rules run.
            self._event("rate_limited", {"channel": message.channel})
            return self._record(conversation, [Reply(self.templates.say("rate_limited"), sender="system")])
        command = message.text.strip().split(maxsplit=1)[0].lower() if message.text.strip() else ""
        if command in ADMIN_COMMANDS:
            return self._record(conversation, [self._admin_command(message, command)])
        status = meta.get("status", "bot")
        if status == "with_agent":
            self._later("relay", escalation_id=meta.get("escalation_id"), conversation=conversation,
                        agent=meta.get("agent"), text=message.text)
            return []  # staff hold the conversation: the bot adds nothing of its own
        if status == "escalated":
            away = self._away()  # "shortly" only while staff are in
            return self._record(conversation, [Reply(self._escalated_text("", away) if away
                                                     else self.templates.say("waiting_for_agent"))])
        rated = self._take_rating(message, meta)  # the answer to "how did we do?" is not a question
        if rated is not None:
            return self._record(conversation, rated)
        return self._record(conversation, self._respond(message, meta))

    def _respond(self, message: InboundMessage, meta: dict) -> list[Reply]:
        conversation = message.conversation_key
        name = message.display_name or meta.get("display_name") or "there"
        command = message.text.strip().lower()
        if command == "/human":
            return self._escalate(message, "asked_for_human")
        result = self.nlu.predict_one(message.text)
        intent = CHAT_COMMANDS.get(command, result.intent)
        negative = float(result.sentiment_scores.get("negative", 0.0))
        trail = self.store.push_sentiment(conversation, negative)
        self._event("intent", {"intent": intent, "channel": message.channel})
        log.info("classified by model %s", getattr(result, "model_version", ""), extra={"conversation": conversation})
        self._later("stats", op="intent", args=[intent])
        fallbacks = int(meta.get("fallbacks", 0))
        reason = self.rules.reason(negative=negative, trail=trail, intent=intent, fallbacks=fallbacks)
        if reason:
            self.review.record_message(message, "escalated", result)
            return self._escalate(message, reason)
        if intent in SMALL_TALK and self.templates.has(intent):
            self.store.update(conversation, fallbacks=0)
            return [Reply(self.templates.say(intent, name=name))]
        canned = self.templates.intent_answer(intent)
        if canned:
            self.store.update(conversation, fallbacks=0)
            self.review.note_answer(message, result)
            return [Reply(canned)]
        decision = self.kb.answer(message.text, result) if self.kb is not None else None
        # Negative but below the escalation line: the answer comes with an apology first.
        apology = [Reply(self.templates.say("apology"))] if self.rules.apologise(negative) else []
        if decision is not None and decision.kind == "answer":
            self.store.update(conversation, fallbacks=0)
            self._event("faq", {"outcome": "answer"})
            self._later("stats", op="faq_answer", args=[])
            self.review.note_answer(message, result, decision)
            return [*apology, Reply(decision.best.entry.answer)]
        if decision is not None and decision.kind == "suggest":
            self.store.update(conversation, fallbacks=0)
            self._event("faq", {"outcome": "suggest"})
            self.review.record_message(message, "suggested", result, decision)
            return [*apology, Reply(self.templates.say("suggest_intro"),
                                    suggestions=tuple(h.entry.question for h in decision.hits))]
        self.review.record_message(message, "fallback", result, decision)
        return self._fallback(message, fallbacks + 1)

    def _fallback(self, message: InboundMessage, fallbacks: int) -> list[Reply]:
        conversation = message.conversation_key
        self.store.update(conversation, fallbacks=fallbacks)
        self._event("fallback", {"text_length": len(message.text), "channel": message.channel})
        self.store.append(conversation, "unanswered", message.text)
        self._later("stats", op="fallback", args=[message.text])  # to stats, never to the event hook (metrics, logs)
        if fallbacks >= self.rules.max_fallbacks:
            return self._escalate(message, "repeated_fallbacks")
        if fallbacks >= 2:  # two in a row: offer a person rather than a third guess
            return [Reply(self.templates.say("offer_human"), suggestions=(self.templates.say("offer_human_button"),))]
        return [Reply(self.templates.say("fallback"))]

    def _escalate(self, message: InboundMessage, reason: str) -> list[Reply]:
        conversation = message.conversation_key
        # Keyed by the message: handled again after a crash, it finds the same escalation instead of a second one.
        record = self.queue.create(conversation_id=conversation, channel=message.channel, user_id=message.user_id,
                                   reason=reason, uid=message.uid)
        self.store.update(conversation, status="escalated", escalation_id=record["id"], fallbacks=0)
        self.store.append(conversation, "system", f"escalated: {reason}", escalation_id=record["id"])
        self._event("escalation", {"reason": reason, "channel": message.channel})
        self._later("stats", op="escalation", args=[conversation])
        reply = Reply(self._escalated_text(reason, self._note_escalation(record, message)))
        self._later("escalation", escalation_id=record["id"])  # staff hear of it once the message is committed
        return [reply]

    def _later(self, kind: str, **details) -> None:
        """A side effect outside the conversation: committed with the message's replies, run after the commit.

        Staff notifications and counters in other Redis slots cannot share the conversation's
        atomic commit, and must not repeat when a message is handled again after a crash. So
        they wait in the message's `Outcome`, enter the effects outbox in the commit's step and
        run once it succeeded (`_run_effect`, called by the dispatcher); an attempt that died or lost its lease leaves
        none. Outside a dispatcher (a direct call) they run at once.
        """
        effect = {"kind": kind, **details}
        pending = _EFFECTS.get()
        if pending is None:
            self._run_effect(effect)
        else:
            pending.append(effect)

    def _run_effect(self, effect: dict) -> None:
        """`Dispatcher.on_effect`: one committed side effect (see `_later`)."""
        kind = effect["kind"]
        if kind == "stats" and effect["op"] in STATS_OPS:
            getattr(self.stats, effect["op"])(*effect["args"])
        elif kind == "escalation":
            record = self.queue.get(effect["escalation_id"])
            transcript = self.store.history(record["conversation_id"])
            for notify in self.hooks.on_escalation:
                try:
                    notify(record, transcript)
                except Exception:  # staff notification failing must not lose the customer's reply
                    log.exception("escalation notifier failed")
        elif kind == "relay":
            record = self._open_escalation({"escalation_id": effect.get("escalation_id")})
            for notify in self.hooks.on_customer_message:
                notify(record or {"conversation_id": effect["conversation"], "agent": effect.get("agent")},
                       effect["text"])

    def _admin_command(self, message: InboundMessage, command: str) -> Reply:
        if message.user_id not in self.admins.get(message.channel, set()):
            return Reply(self.templates.say("admin_only"), sender="system")
        if command == "/queue":
            open_items = self.queue.list(status="open") + self.queue.list(status="claimed")
            if not open_items:
                return Reply("The escalation queue is empty.", sender="system")
            lines = [f"{r['id']}  {r['status']}  {r['reason']}  {r['conversation_id']}" for r in open_items[:20]]
            return Reply("Escalations:\n" + "\n".join(lines), sender="system")
        action = self.hooks.admin_actions.get(command)
        if action is None:
            return Reply(f"{command} is not available on this server.", sender="system")
        return Reply(action(), sender="system")

    def _record(self, conversation: str, replies: list[Reply]) -> list[Reply]:
        for reply in replies:
            self.store.append(conversation, reply.sender, reply.text, agent=reply.agent,
                              suggestions=list(reply.suggestions) or None)
        return replies

    def _open_escalation(self, meta: dict) -> dict | None:
        escalation_id = meta.get("escalation_id")
        try:
            return self.queue.get(escalation_id) if escalation_id else None
        except EscalationError:
            return None

    def _event(self, name: str, details: dict) -> None:
        if self.hooks.on_event is not None:
            self.hooks.on_event(name, details)

    # ------------------------------------------------------------------ staff
    # Each returns the escalation record plus `delivered`: whether the customer's platform accepted the
    # message this action sends them (False: refused after the channel's retries; marked in the transcript).
    def claim(self, escalation_id: str, agent: str) -> dict:
        record = self.queue.claim(escalation_id, agent)
        conversation = record["conversation_id"]
        self.store.update(conversation, status="with_agent", agent=agent)
        self.store.append(conversation, "system", f"claimed by {agent}", by=agent)
        delivered = self._send(conversation, record["channel"],
                               Reply(self.templates.say("agent_joined", agent=agent), sender="system"))
        self._status_changed(record)
        return {**record, "delivered": delivered}

    def agent_reply(self, escalation_id: str, agent: str, text: str) -> dict:
        record = self.queue.get(escalation_id)
        if record["status"] == "open":
            record = self.claim(escalation_id, agent)  # replying to an open escalation takes it
        elif record["status"] != "claimed":
            raise EscalationError(f"escalation {escalation_id} is {record['status']}")
        conversation = record["conversation_id"]
        delivered = self._send(conversation, record["channel"], Reply(text, sender="agent", agent=agent),
                               record=False)
        self.review.staff_answered(record, lambda: self.store.history(conversation, last=50))
        # Recorded whether or not it arrived, marked `delivered: false` when the platform refused it.
        self.store.append(conversation, "agent", text, by=agent, delivered=None if delivered else False)
        return {**record, "delivered": delivered}

    def resolve(self, escalation_id: str, agent: str) -> dict:
        record = self.queue.resolve(escalation_id, agent)
        conversation = record["conversation_id"]
        self.store.update(conversation, status="bot", agent=None, escalation_id=None, fallbacks=0)
        self.store.append(conversation, "system", f"resolved by {agent}", by=agent)
        delivered = self._send(conversation, record["channel"], Reply(self.templates.say("resolved", agent=agent)))
        self._ask_rating(record, agent)
        self._status_changed(record)
        return {**record, "delivered": delivered}

    # ------------------------------------------------------------------ business hours and ratings
    def _note_escalation(self, record: dict, message: InboundMessage) -> dict | None:
        """Mark a new escalation out of hours (and with the customer's name) for staff; the next opening
        (`BusinessHours.describe_next`) when staff are away, else None. A pending rating question lapses."""
        away = self._away()
        extra = {"out_of_hours": "1"} if away else {}
        if message.display_name:
            extra["display_name"] = message.display_name
        if extra:
            self.redis.hset(self.keys.esc(record["id"]), mapping=extra)
            record.update(extra)
        self.store.update(message.conversation_key, **csat.CLEARED)
        return away

    def _away(self) -> dict | None:
        """When staff are out: their next opening (`BusinessHours.describe_next`); None while they are in."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        if self.hours is None or self.hours.is_open(now):
            return None
        return self.hours.describe_next(now)

    def _escalated_text(self, reason: str, away: dict | None) -> str:
        if away is None:
            return self.templates.escalated(reason)
        if self.templates.has("escalated_out_of_hours"):
            return self.templates.say("escalated_out_of_hours", **away)
        return ("Our team is away right now; they're back {day} at {time} ({timezone}) and will pick this up "
                "then.").format(**away)

    def _ask_rating(self, record: dict, agent: str) -> None:
        """After a resolution: "how did we do?", with 1-5 as buttons (see `bot.csat`)."""
        self.store.update(record["conversation_id"], **csat.ask_fields(record["id"], agent, self.clock()))
        self._send(record["conversation_id"], record["channel"], Reply(csat.ask_text(self.templates),
                                                                        suggestions=csat.RATINGS))

    def _take_rating(self, message: InboundMessage, meta: dict) -> list[Reply] | None:
        """The thanks for a rating, once stored (`bot.csat.store_rating`); None when the message is none."""
        escalation_id = csat.pending(meta, self.clock())
        rating = csat.parse_rating(message.text) if escalation_id else None
        if rating is None:
            return None
        csat.store_rating(self, message, escalation_id, meta.get("csat_agent") or "unknown", rating)
        self._event("csat", {"rating": rating, "channel": message.channel})
        return [Reply(csat.thanks_text(self.templates))]

    def _status_changed(self, record: dict) -> None:
        for notify in self.hooks.on_status_change:
            try:
                notify(record)
            except Exception:  # a stale staff notification must not undo the action itself
                log.exception("status-change notifier failed")

    def reannounce_unclaimed(self, older_than: float) -> list[dict]:
        """Notify staff again about escalations nobody has claimed for `older_than` seconds."""
        due = self.queue.due_for_reannounce(older_than)
        for record in due:
            transcript = self.store.history(record["conversation_id"])
            for notify in self.hooks.on_escalation:
                try:
                    notify({**record, "reannounced": True}, transcript)
                except Exception:
                    log.exception("escalation notifier failed")
        return due

    def transcript(self, escalation_id: str) -> list[dict]:
        return self.store.history(self.queue.get(escalation_id)["conversation_id"])

    def history(self, channel: str, conversation_id: str, last: int | None = None) -> list[dict]:
        """A conversation's transcript, for channels that redraw it (the web chat after a page reload)."""
        return self.store.history(f"{channel}:{conversation_id}", last=last)

    def _send(self, conversation: str, channel: str, reply: Reply, record: bool = True) -> bool:
        """Publish `reply` and hand it to the channel's output; whether the platform accepted it.

        The channel's output retries (Slack: its SDK's retry handlers) and raises once it gives
        up. With `record`, the reply goes into the transcript after the attempt, marked
        `delivered: false` when it failed, so staff see it (console, `/admin/escalations/{id}`).
        """
        self.outbox.publish(conversation, reply)
        delivered = True
        output = self._output(channel)
        if output is not None:
            try:
                output.send(conversation.partition(":")[2], reply)
            except Exception as exc:  # the message text is personal data: only the reason is logged
                delivered = False
                log.warning("delivering a message to %s failed (%s)", channel, type(exc).__name__)
        if record:
            self.store.append(conversation, reply.sender, reply.text, agent=reply.agent,
                              suggestions=list(reply.suggestions) or None,  # a reload redraws the buttons
                              delivered=None if delivered else False)
        return delivered
