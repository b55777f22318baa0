"""Staff actions: claim, reply to and resolve escalations, with the customer told each step.

A mixin of `bot.core.Bot`; every step lands in the transcript with who did it. After a
resolution the customer is asked to rate the help (`bot.csat`); escalations nobody claims are
announced to staff again (`reannounce_unclaimed`).
"""

from __future__ import annotations

import logging

from bot import csat
from bot.messages import Reply
from bot.queue import EscalationError

log = logging.getLogger("bot.core")


class StaffActions:
    """The staff side of `bot.core.Bot` (see the module docstring)."""

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

    def _ask_rating(self, record: dict, agent: str) -> None:
        """After a resolution: "how did we do?", with 1-5 as buttons (see `bot.csat`)."""
        self.store.update(record["conversation_id"], **csat.ask_fields(record["id"], agent, self.clock()))
        self._send(record["conversation_id"], record["channel"], Reply(csat.ask_text(self.templates),
                                                                        suggestions=csat.RATINGS))

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
