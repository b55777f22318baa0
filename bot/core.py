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
from dataclasses import dataclass, field

import redis

from bot.dispatch import Dispatcher, Handled
from bot.escalation import EscalationRules
from bot.keys import Keys
from bot.messages import InboundMessage, Reply
from bot.outbox import Outbox
from bot.queue import EscalationError, EscalationQueue
from bot.ratelimit import RateLimiter
from bot.roles import RoleLease
from bot.stats import BotStats
from bot.store import ConversationStore
from bot.templates import Templates

log = logging.getLogger(__name__)

SMALL_TALK = ("greet", "thanks", "goodbye", "bot_capabilities")
CHAT_COMMANDS = {"/start": "greet", "/help": "bot_capabilities"}
ADMIN_COMMANDS = ("/reload", "/queue")


@dataclass
class BotHooks:
    """How the bot reaches outside itself; the wiring layer fills these in."""

    deliver: Callable[[str, str, Reply], None] | None = None  # (conversation, channel, reply) -> customer
    on_escalation: list[Callable[[dict, list[dict]], None]] = field(default_factory=list)  # (record, transcript)
    on_customer_message: list[Callable[[dict, str], None]] = field(default_factory=list)  # to the agent
    on_status_change: list[Callable[[dict], None]] = field(default_factory=list)  # claimed / resolved record
    on_event: Callable[[str, dict], None] | None = None  # metrics: ("fallback"|"escalation"|..., details)
    admin_actions: dict[str, Callable[[], str]] = field(default_factory=dict)  # "/reload" -> summary text


class Bot:
    def __init__(self, client: redis.Redis, nlu, kb, *, prefix: str = "frontdesk", templates: Templates | None = None,
                 rules: EscalationRules | None = None, admins: dict[str, set[str]] | None = None,
                 hooks: BotHooks | None = None, rate_limit: tuple[int, float] = (20, 60.0), lease_ms: int = 15_000,
                 dedup_seconds: int = 86_400):
        self.keys = Keys(prefix)
        self.redis = client
        self.store = ConversationStore(client, self.keys)
        self.queue = EscalationQueue(client, self.keys)
        self.outbox = Outbox(client, self.keys)
        self.rate_limiter = RateLimiter(client, self.keys, limit=rate_limit[0], window=rate_limit[1])
        self.stats = BotStats(client, self.keys)  # the console's numbers; never fails a message
        self.nlu = nlu
        self.kb = kb
        self.templates = templates or Templates.load()
        self.rules = rules or EscalationRules()
        self.admins = admins or {}
        self.hooks = hooks or BotHooks()
        self.dispatcher = Dispatcher(client, self.keys, self._process, lease_ms=lease_ms,
                                     retention_s=dedup_seconds)

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
        except redis.RedisError as exc:
            log.warning("redis unavailable while handling a message (%s)", type(exc).__name__)
            self._event("redis_error", {})
            return Handled([Reply(self.templates.say("unavailable"), sender="system")])

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
        connected to any worker shows it live) and handed to the channel's output (`hooks.deliver`,
        a push channel such as Slack or Telegram; pull channels have none). Exactly once, under
        the same delivery claim the adapters take (`claim_delivery` / `finish_delivery`, keyed by
        the message's uid), so a live waiter that also got the result does not post it again.
        False when the channel refused it (marked in the transcript for staff) or it was not ours to send.
        """
        if not replies:
            return True  # staff hold the conversation: nothing of the bot's to send
        handled = Handled(replies, uid=uid, conversation=message.conversation_key)
        if not self.claim_delivery(handled):
            return False  # sent already, or being sent by whoever else holds the claim
        conversation = message.conversation_key
        sent = False
        try:
            # `_send` publishes and hands each reply to the channel's output; the first refusal stops the rest.
            sent = all(self._send(conversation, message.channel, reply, record=False) for reply in replies)
            if not sent:
                self.store.append(conversation, "system",
                                  f"not delivered: {message.channel} refused the bot's answer after retries",
                                  delivered=False)
        except redis.RedisError:
            log.warning("an undelivered answer could not be recorded: Redis unavailable")
        finally:
            self.finish_delivery(handled, sent)
        return sent

    def _process(self, message: InboundMessage) -> list[Reply]:
        conversation = message.conversation_key
        if self.store.rewind(conversation, message.uid):
            log.warning("re-handling a message whose first attempt died", extra={"conversation": conversation})
        meta = self.store.start(conversation, message.channel, message.user_id, message.display_name)
        self.store.append(conversation, "customer", message.text, user_id=message.user_id, uid=message.uid or None)
        self.stats.message(conversation)
        if not self.rate_limiter.allow(message.channel, message.user_id):
            # Kept in the transcript for staff, but no model time spent and no escalation rules run.
            self._event("rate_limited", {"channel": message.channel})
            return self._record(conversation, [Reply(self.templates.say("rate_limited"), sender="system")])
        command = message.text.strip().split(maxsplit=1)[0].lower() if message.text.strip() else ""
        if command in ADMIN_COMMANDS:
            return self._record(conversation, [self._admin_command(message, command)])
        status = meta.get("status", "bot")
        if status == "with_agent":
            record = self._open_escalation(meta)
            for notify in self.hooks.on_customer_message:
                notify(record or {"conversation_id": conversation, "agent": meta.get("agent")}, message.text)
            return []  # staff hold the conversation: the bot adds nothing of its own
        if status == "escalated":
            return self._record(conversation, [Reply(self.templates.say("waiting_for_agent"))])
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
        self.stats.intent(intent)
        fallbacks = int(meta.get("fallbacks", 0))
        reason = self.rules.reason(negative=negative, trail=trail, intent=intent, fallbacks=fallbacks)
        if reason:
            return self._escalate(message, reason)
        if intent in SMALL_TALK and self.templates.has(intent):
            self.store.update(conversation, fallbacks=0)
            return [Reply(self.templates.say(intent, name=name))]
        canned = self.templates.intent_answer(intent)
        if canned:
            self.store.update(conversation, fallbacks=0)
            return [Reply(canned)]
        decision = self.kb.answer(message.text, result) if self.kb is not None else None
        # Negative but below the escalation line: the answer comes with an apology first.
        apology = [Reply(self.templates.say("apology"))] if self.rules.apologise(negative) else []
        if decision is not None and decision.kind == "answer":
            self.store.update(conversation, fallbacks=0)
            self._event("faq", {"outcome": "answer"})
            self.stats.faq_answer()
            return [*apology, Reply(decision.best.entry.answer)]
        if decision is not None and decision.kind == "suggest":
            self.store.update(conversation, fallbacks=0)
            self._event("faq", {"outcome": "suggest"})
            return [*apology, Reply(self.templates.say("suggest_intro"),
                                    suggestions=tuple(h.entry.question for h in decision.hits))]
        return self._fallback(message, fallbacks + 1)

    def _fallback(self, message: InboundMessage, fallbacks: int) -> list[Reply]:
        conversation = message.conversation_key
        self.store.update(conversation, fallbacks=fallbacks)
        self._event("fallback", {"text_length": len(message.text), "channel": message.channel})
        self.store.append(conversation, "unanswered", message.text)
        self.stats.fallback(message.text)  # the text goes to stats, never to the event hook (metrics, logs)
        if fallbacks >= self.rules.max_fallbacks:
            return self._escalate(message, "repeated_fallbacks")
        if fallbacks >= 2:  # two in a row: offer a person rather than a third guess
            return [Reply(self.templates.say("offer_human"), suggestions=(self.templates.say("offer_human_button"),))]
        return [Reply(self.templates.say("fallback"))]

    def _escalate(self, message: InboundMessage, reason: str) -> list[Reply]:
        conversation = message.conversation_key
        record = self.queue.create(conversation_id=conversation, channel=message.channel, user_id=message.user_id,
                                   reason=reason)
        self.store.update(conversation, status="escalated", escalation_id=record["id"], fallbacks=0)
        self.store.append(conversation, "system", f"escalated: {reason}", escalation_id=record["id"])
        self._event("escalation", {"reason": reason, "channel": message.channel})
        self.stats.escalation(conversation)
        reply = Reply(self.templates.escalated(reason))
        transcript = self.store.history(conversation)
        for notify in self.hooks.on_escalation:
            try:
                notify(record, transcript)
            except Exception:  # staff notification failing must not lose the customer's reply
                log.exception("escalation notifier failed")
        return [reply]

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
        # Recorded whether or not it arrived, marked `delivered: false` when the platform refused it.
        self.store.append(conversation, "agent", text, by=agent, delivered=None if delivered else False)
        return {**record, "delivered": delivered}

    def resolve(self, escalation_id: str, agent: str) -> dict:
        record = self.queue.resolve(escalation_id, agent)
        conversation = record["conversation_id"]
        self.store.update(conversation, status="bot", agent=None, escalation_id=None, fallbacks=0)
        self.store.append(conversation, "system", f"resolved by {agent}", by=agent)
        delivered = self._send(conversation, record["channel"], Reply(self.templates.say("resolved", agent=agent)))
        self._status_changed(record)
        return {**record, "delivered": delivered}

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
        if self.hooks.deliver is not None:
            try:
                self.hooks.deliver(conversation, channel, reply)
            except Exception as exc:  # the message text is personal data: only the reason is logged
                delivered = False
                log.warning("delivering a message to %s failed (%s)", channel, type(exc).__name__)
        if record:
            self.store.append(conversation, reply.sender, reply.text, agent=reply.agent,
                              delivered=None if delivered else False)
        return delivered
