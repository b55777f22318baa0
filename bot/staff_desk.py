"""The staff desk: claim, reply to and resolve escalations, with the customer told each step.

Every step lands in the transcript with who did it. After a resolution the customer is asked to
rate the help (`bot.csat`); escalations nobody claims are announced to staff again, a few times
(`reannounce_unclaimed`), and once unclaimed past the queue's expiry the bot has the conversation
again. Each action returns a `StaffResult`: the escalation after it, and whether the customer's
platform accepted the message the action sent them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from bot import csat
from bot.delivery import Delivery
from bot.effects import CountExpiredEscalation, EffectRunner
from bot.escalations import (
    Escalation,
    EscalationConflict,
    EscalationQueue,
    EscalationStatus,
    StaffResult,
)
from bot.events import BotObserver, QuietObserver
from bot.messages import Reply
from bot.review import ReviewInbox
from bot.store import ConversationStatus, ConversationStore
from bot.templates import Templates

log = logging.getLogger("bot.core")

StatusNotifier = Callable[[Escalation], None]  # an escalation claimed, resolved or expired (redraw staff's view)
# Said to a customer whose escalation expired unclaimed, when the templates in use have no `escalation_expired`.
EXPIRED_TEXT = ("Sorry, nobody from our team could pick this up in time. I'm here to help again: ask me anything, "
                "or type /human to ask for a person once more.")


class StaffDesk:
    def __init__(self, queue: EscalationQueue, store: ConversationStore, delivery: Delivery, review: ReviewInbox,
                 effects: EffectRunner, *, templates: Templates, on_status_change: Sequence[StatusNotifier] = (),
                 clock: Callable[[], float] = time.time, observer: BotObserver | None = None):
        self.queue = queue
        self.observer = observer or QuietObserver()  # counts expired escalations (metrics)
        self.store = store
        self.delivery = delivery
        self.review = review
        self.effects = effects  # announces re-announced escalations like new ones
        self.templates = templates
        self.on_status_change = list(on_status_change)
        self.clock = clock

    def claim(self, escalation_id: str, agent: str) -> StaffResult:
        escalation = self.queue.claim(escalation_id, agent)
        conversation = escalation.conversation_id
        self.store.update(conversation, status=ConversationStatus.WITH_AGENT, agent=agent)
        self.store.append(conversation, "system", f"claimed by {agent}", by=agent, to=escalation.user_id or None)
        delivered = self.delivery.send(conversation, escalation.channel,
                                       Reply(self.templates.say("agent_joined", agent=agent), sender="system"))
        self._status_changed(escalation)
        return StaffResult(escalation, delivered)

    def agent_reply(self, escalation_id: str, agent: str, text: str) -> StaffResult:
        escalation = self.queue.get(escalation_id)
        if escalation.status == EscalationStatus.OPEN:
            escalation = self.claim(escalation_id, agent).escalation  # replying to an open escalation takes it
        elif escalation.status != EscalationStatus.CLAIMED:
            raise EscalationConflict(f"escalation {escalation_id} is {escalation.status}")
        conversation = escalation.conversation_id
        delivered = self.delivery.send(conversation, escalation.channel, Reply(text, sender="agent", agent=agent),
                                       record=False)
        self.review.staff_answered(escalation, lambda: self.store.history(conversation, last=50))
        # Recorded whether or not it arrived, marked `delivered: false` when the platform refused it.
        self.store.append(conversation, "agent", text, by=agent, delivered=None if delivered else False,
                          to=escalation.user_id or None)
        return StaffResult(escalation, delivered)

    def resolve(self, escalation_id: str, agent: str) -> StaffResult:
        escalation = self.queue.resolve(escalation_id, agent)
        conversation = escalation.conversation_id
        self.store.update(conversation, status=ConversationStatus.BOT, agent=None, escalation_id=None, fallbacks=0)
        self.store.append(conversation, "system", f"resolved by {agent}", by=agent, to=escalation.user_id or None)
        delivered = self.delivery.send(conversation, escalation.channel,
                                       Reply(self.templates.say("resolved", agent=agent)))
        self._ask_rating(escalation, agent)
        self._status_changed(escalation)
        return StaffResult(escalation, delivered)

    def _ask_rating(self, escalation: Escalation, agent: str) -> None:
        """After a resolution: "how did we do?", with 1-5 as buttons (see `bot.csat`)."""
        self.store.update(escalation.conversation_id, **csat.ask_fields(escalation.id, agent, self.clock()))
        self.delivery.send(escalation.conversation_id, escalation.channel,
                           Reply(csat.ask_text(self.templates), suggestions=csat.RATINGS))

    def _status_changed(self, escalation: Escalation) -> None:
        for notify in self.on_status_change:
            try:
                notify(escalation)
            except Exception:  # a stale staff notification must not undo the action itself
                log.exception("status-change notifier failed")

    def reannounce_unclaimed(self, older_than: float) -> list[Escalation]:
        """Notify staff again about escalations nobody has claimed for `older_than` seconds (each at most the
        queue's `max_reminders` times), and give the bot back those unclaimed past the queue's expiry.
        Every worker calls this; the queue lets one of them act on each escalation. The reminders, returned."""
        sweep = self.queue.sweep_unclaimed(older_than)
        for escalation in sweep.expired:
            try:
                self._expired(escalation)
            except Exception:  # one conversation failing must not leave the others with nobody
                log.exception("handing an expired escalation back to the bot failed")
        for escalation in sweep.reminders:
            self.effects.announce(escalation, self.store.history(escalation.conversation_id))
        return sweep.reminders

    def _expired(self, escalation: Escalation) -> None:
        """Nobody claimed it in time: the bot answers the conversation again and the customer is told so."""
        conversation = escalation.conversation_id
        # Only while the conversation still waits on this escalation (not erased meanwhile).
        if self.store.meta(conversation).get("escalation_id") == escalation.id:
            self.store.update(conversation, status=ConversationStatus.BOT, agent=None, escalation_id=None,
                              fallbacks=0)
            self.store.append(conversation, "system", "expired: nobody claimed it", escalation_id=escalation.id,
                              to=escalation.user_id or None)
            text = self.templates.say("escalation_expired") if self.templates.has("escalation_expired") \
                else EXPIRED_TEXT
            self.delivery.send(conversation, escalation.channel, Reply(text))
        self.effects.run([CountExpiredEscalation(escalation.channel)])
        self.observer.escalation_expired(escalation.channel)
        self._status_changed(escalation)

    def transcript(self, escalation_id: str) -> list[dict]:
        return self.store.history(self.queue.get(escalation_id).conversation_id)
