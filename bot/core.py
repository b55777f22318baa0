"""The bot: `receive(message)`, the one entry point every channel uses, and the handling of each message.

Per message (under the conversation's lease, see `bot.dispatch`): record it, and unless
staff hold the conversation, classify it (intent, out of scope, sentiment), check the
escalation rules, and answer from templates, canned intent answers or the FAQ, with an
honest fallback when nothing fits. What it changes outside the conversation (staff
notifications, statistics) is committed with its replies and run once after (`_later`).
Delivery to the platforms is `bot.delivery`; staff claim, reply to and resolve escalations
through `bot.staff_actions`; both are mixins of `Bot`.
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
from bot.delivery import Delivery
from bot.dispatch import Dispatcher, Handled, Outcome
from bot.errors import REDIS_ERRORS
from bot.escalation import EscalationRules
from bot.hours import BusinessHours
from bot.keys import Keys
from bot.messages import InboundMessage, Reply, Source
from bot.outbox import Outbox
from bot.queue import EscalationError, EscalationQueue
from bot.ratelimit import RateLimiter
from bot.review import ReviewInbox
from bot.roles import RoleLease
from bot.staff_actions import StaffActions
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


class Bot(Delivery, StaffActions):
    """One per process: customers' messages in (`receive`), answers and staff actions out, all state in Redis."""

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
        self.dispatcher.on_effects = self._run_effects
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
            return [*apology, Reply(decision.text or decision.best.entry.answer,
                                    source=Source.from_dict(decision.best.source))]
        if decision is not None and decision.kind == "suggest":
            self.store.update(conversation, fallbacks=0)
            self._event("faq", {"outcome": "suggest"})
            self.review.record_message(message, "suggested", result, decision)
            return [*apology, Reply(self.templates.say("suggest_intro"),
                                    suggestions=tuple(h.entry.question for h in decision.hits),
                                    suggestion_sources=tuple(Source.from_dict(h.source) for h in decision.hits))]
        self.review.record_message(message, "fallback", result, decision)
        return self._fallback(message, fallbacks + 1)

    def decision_for(self, text: str, result) -> str:
        """What the bot would do with `text` classified as `result`, changing nothing: "escalate", "answer",
        "suggest" or "fallback". `model check` replays recent messages through it for two models.

        The same rules as `_respond` for a fresh conversation (no earlier fallbacks or sentiment trail).
        """
        negative = float(result.sentiment_scores.get("negative", 0.0))
        if self.rules.reason(negative=negative, trail=[negative], intent=result.intent, fallbacks=0):
            return "escalate"
        if (result.intent in SMALL_TALK and self.templates.has(result.intent)) or self.templates.intent_answer(
                result.intent):
            return "answer"
        decision = self.kb.answer(text, result) if self.kb is not None else None
        return str(decision.kind) if decision is not None and decision.kind in ("answer", "suggest") else "fallback"

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
        run once it succeeded (`_run_effects`, called by the dispatcher); an attempt that died or lost its lease leaves
        none. Outside a dispatcher (a direct call) they run at once.
        """
        # Staff notifications leave the system: they are tracked one by one (`Dispatcher._run_effects`).
        effect = {"kind": kind, **details, "external": kind in ("escalation", "relay")}
        pending = _EFFECTS.get()
        if pending is None:
            self._run_effects([effect])
        else:
            pending.append(effect)

    def _run_effects(self, effects: list[dict]) -> None:
        """`Dispatcher.on_effects`: committed side effects, their statistics in one round trip."""
        with self.stats.batch():
            for effect in effects:
                try:
                    self._run_effect(effect)
                except Exception:  # a notifier or Redis failing must not cost the other effects
                    log.exception("side effect %s failed", effect.get("kind"))

    def _run_effect(self, effect: dict) -> None:
        """One committed side effect (see `_later`)."""
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
                              suggestions=list(reply.suggestions) or None,
                              source=reply.source.to_dict() if reply.source else None)
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

    def _take_rating(self, message: InboundMessage, meta: dict) -> list[Reply] | None:
        """The thanks for a rating, once stored (`bot.csat.store_rating`); None when the message is none."""
        escalation_id = csat.pending(meta, self.clock())
        rating = csat.parse_rating(message.text) if escalation_id else None
        if rating is None:
            return None
        csat.store_rating(self, message, escalation_id, meta.get("csat_agent") or "unknown", rating)
        self._event("csat", {"rating": rating, "channel": message.channel})
        return [Reply(csat.thanks_text(self.templates))]
