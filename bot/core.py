"""The bot: `receive(message)`, the one entry point every channel uses, over collaborators that each do one job.

A message's path: `receive` → `Dispatcher.handle` (intake, order, exactly once across
workers; `bot.dispatch`) → `Responder.respond` (what to say; `bot.responder`) → the commit →
`EffectRunner.run` (statistics, staff notifications; `bot.effects`) → `Delivery.deliver` (to a
push platform, once; `bot.delivery`) → back to the caller. Staff claim, reply to and resolve
escalations through `StaffDesk` (`bot.staff_desk`). `Bot` builds these from its arguments and
holds nothing else: it is the surface the wiring layer and the channels see.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import redis

from bot.audit import AuditLog
from bot.delivery import Delivery, DeliveryClaims, OutputLookup
from bot.dispatch import Dispatcher
from bot.dispatch_records import Handled
from bot.effects import EffectRunner, EscalationNotifier, RelayNotifier
from bot.errors import REDIS_ERRORS, refused_write
from bot.escalation_rules import EscalationRules
from bot.escalations import Escalation, EscalationPolicy, EscalationQueue, StaffResult
from bot.events import BotObserver, QuietObserver, Stage
from bot.hours import BusinessHours
from bot.keys import Keys
from bot.messages import InboundMessage, Reply
from bot.outbox import Outbox
from bot.posts import PlatformPosts
from bot.protocols import Answerer, Classifier
from bot.ratelimit import EscalationLimits, RateLimiter
from bot.replay import BotDecision
from bot.responder import Responder
from bot.review import LOW_CONFIDENCE, ReviewInbox
from bot.roles import RoleLease
from bot.staff_desk import StaffDesk, StatusNotifier
from bot.stats import BotStats
from bot.store import ConversationStore
from bot.templates import Templates

log = logging.getLogger(__name__)


def _no_output(channel: str) -> None:
    return None


@dataclass(frozen=True)
class BotHooks:
    """How the bot reaches outside itself; the wiring layer fills these in."""

    output: OutputLookup = _no_output  # channel name -> its push output, if any
    on_escalation: Sequence[EscalationNotifier] = ()  # a new (or re-announced) escalation, with its transcript
    on_customer_message: Sequence[RelayNotifier] = ()  # a customer's words for the agent holding the conversation
    on_status_change: Sequence[StatusNotifier] = ()  # an escalation claimed or resolved
    observer: BotObserver = field(default_factory=QuietObserver)  # metrics and logs
    admin_actions: Mapping[str, Callable[[], str]] = field(default_factory=dict)  # "/reload" -> summary text


class Bot:
    """One per process: customers' messages in (`receive`), answers and staff actions out, all state in Redis."""

    def __init__(self, client: redis.Redis, nlu: Classifier, kb: Answerer | None, *, prefix: str = "frontdesk",
                 templates: Templates | None = None, rules: EscalationRules | None = None,
                 admins: dict[str, set[str]] | None = None, hooks: BotHooks | None = None,
                 rate_limit: tuple[int, float] = (20, 60.0), lease_ms: int = 15_000, dedup_seconds: int = 86_400,
                 hours: BusinessHours | None = None, clock: Callable[[], float] = time.time,
                 escalation_retention_s: int = 30 * 86_400, review_retention_s: float = 30 * 86_400,
                 review_confidence: float = LOW_CONFIDENCE, sweep_min_age: float = 1.0,
                 escalation_policy: EscalationPolicy | None = None, resolution_s: float = 24 * 3600,
                 audit_days: float = 365):
        keys = Keys(prefix)
        policy = escalation_policy or EscalationPolicy()
        hooks = hooks or BotHooks()
        templates = templates or Templates.load()
        self._redis = client
        self._keys = keys
        self.observer = hooks.observer
        store = ConversationStore(client, keys)
        self.queue = EscalationQueue(client, keys, retention_s=escalation_retention_s,
                                     expire_after_s=policy.expire_after_s, max_reminders=policy.max_reminders)
        self.outbox = Outbox(client, keys)  # live pushes to a connected page (web chat, console)
        # The console's numbers; never fails a message. Customers' unanswered texts go with the escalation retention.
        # On the bot's clock, so the resolution figures' window (`resolution_s`, bot.resolution) and the reopen
        # check in the responder read one time.
        self.stats = BotStats(client, keys, text_ttl=escalation_retention_s, clock=clock, resolution_s=resolution_s)
        self.review = ReviewInbox(client, keys, retention_s=review_retention_s, low_confidence=review_confidence)
        self.audit = AuditLog(client, keys, days=audit_days)  # FRONTDESK_AUDIT_DAYS
        self.posts = PlatformPosts(client, keys)  # staff-platform posts holding customers' words, for erasure
        self.templates = templates
        self.store = store
        effects = EffectRunner(self.stats, self.queue, store, on_escalation=hooks.on_escalation,
                               on_customer_message=hooks.on_customer_message)
        self.responder = Responder(store, self.queue, self.review, RateLimiter(client, keys, limit=rate_limit[0],
                                                                               window=rate_limit[1]),
                                   nlu, kb, audit=self.audit, templates=templates, rules=rules or EscalationRules(),
                                   observer=hooks.observer, admins=admins or {}, admin_actions=hooks.admin_actions,
                                   hours=hours, clock=clock, resolution_s=resolution_s,
                                   escalation_limits=EscalationLimits(client, keys, per_customer=policy.per_customer,
                                                                      per_address=policy.per_address))
        self.delivery = Delivery(DeliveryClaims(client, keys, retention_s=dedup_seconds), store, self.outbox,
                                 hooks.output)
        self.desk = StaffDesk(self.queue, store, self.delivery, self.review, effects, templates=templates,
                              on_status_change=hooks.on_status_change, clock=clock, observer=hooks.observer)
        self._dispatcher = Dispatcher(client, keys, self.responder.respond, lease_ms=lease_ms,
                                      retention_s=dedup_seconds, on_swept=self.delivery.deliver_swept,
                                      tracks_delivery=self.delivery.tracks, on_effects=effects.run,
                                      sweep_min_age=sweep_min_age, observer=hooks.observer)

    # ------------------------------------------------------------------ customers
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
        if handled.queued and self.delivery.tracks(message):
            started = time.perf_counter()
            handled.delivered = self.delivery.deliver(message, handled)
            self.observer.stage(Stage.DELIVER, time.perf_counter() - started)
        if handled.queued and not handled.duplicate:
            self.observer.message(message.channel)
        return handled

    def handle(self, message: InboundMessage) -> Handled:
        """Replies for one inbound message, not delivered; a redelivered platform message is answered once only."""
        started = time.perf_counter()
        try:
            handled = self._dispatcher.handle(message)
            # Ids and counts only: message text is personal data and never logged.
            log.info("message handled", extra={"conversation": message.conversation_key, "channel": message.channel,
                                               "replies": len(handled.replies), "duplicate": handled.duplicate,
                                               "ms": round((time.perf_counter() - started) * 1000, 1)})
            return handled
        except REDIS_ERRORS as exc:
            if refused_write(exc):  # at maxmemory: up, but full; an operator has to act (docs/OPERATIONS.md)
                log.error("redis refused a write while handling a message: it is at its maxmemory")
                self.observer.redis_refused_write()
            else:
                log.warning("redis unavailable while handling a message (%s)", type(exc).__name__)
                self.observer.redis_error()
            return Handled([Reply(self.templates.say("unavailable"), sender="system")])

    def seen(self, message: InboundMessage) -> bool:
        """Whether this platform message id was taken in before (a redelivery: its answer exists or is coming)."""
        return bool(message.message_id) and bool(
            self._redis.exists(self._keys.seen(message.conversation_key, message.message_id)))

    def decisions_for(self, texts: list[str], results: list, kb: Answerer | None = None) -> list[BotDecision]:
        """What the bot would do with each text classified as its result (see `Responder.decisions_for`)."""
        return self.responder.decisions_for(texts, results, kb)

    @property
    def rules(self) -> EscalationRules:
        return self.responder.rules

    def use_rules(self, rules: EscalationRules) -> None:
        """Escalate by `rules` from the next message on (the knowledge base recalibrated them)."""
        self.responder.rules = rules

    def use_templates(self, templates: Templates) -> None:
        """Say things `templates`' way from the next message on (the company's wording was reloaded)."""
        self.templates = self.responder.templates = self.desk.templates = templates

    def history(self, channel: str, conversation_id: str, last: int | None = None) -> list[dict]:
        """A conversation's transcript, for channels that redraw it (the web chat after a page reload)."""
        return self.store.history(f"{channel}:{conversation_id}", last=last)

    # ------------------------------------------------------------------ staff
    def claim(self, escalation_id: str, agent: str) -> StaffResult:
        return self.desk.claim(escalation_id, agent)

    def agent_reply(self, escalation_id: str, agent: str, text: str) -> StaffResult:
        return self.desk.agent_reply(escalation_id, agent, text)

    def resolve(self, escalation_id: str, agent: str) -> StaffResult:
        return self.desk.resolve(escalation_id, agent)

    def reannounce_unclaimed(self, older_than: float) -> list[Escalation]:
        return self.desk.reannounce_unclaimed(older_than)

    def transcript(self, escalation_id: str) -> list[dict]:
        return self.desk.transcript(escalation_id)

    # ------------------------------------------------------------------ the process
    def role(self, name: str, ttl_s: float) -> RoleLease:
        """This process's claim on a role only one worker may play at a time (see `bot.roles`)."""
        return RoleLease(self._redis, self._keys, name, ttl_s)

    def start_sweeper(self, interval: float) -> None:
        """Take over work a dead worker left behind, every `interval` seconds (`Dispatcher.start_sweeper`)."""
        self._dispatcher.start_sweeper(interval)

    def sweep_once(self) -> int:
        """One look for work a dead worker left behind; how many conversations were drained."""
        return self._dispatcher.sweep_once()

    def close(self) -> None:
        """Stop the sweeper and the live-delivery listener (the rest holds no threads or connections)."""
        self._dispatcher.close()
        self.outbox.close()
