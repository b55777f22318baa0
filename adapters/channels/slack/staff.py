"""Staff's side of Slack: escalations posted to the support channel, and what staff do there.

As the `StaffNotifier`, an escalation becomes a post in `SLACK_SUPPORT_CHANNEL` (a reminder in
its thread when it is re-announced), a customer's message while staff hold the conversation is
relayed into that thread, and the post is redrawn on every claim and hand-back. Staff claim and
resolve with the post's buttons, answer the customer by replying in its thread, and run the
core's admin commands with `/frontdesk reload|queue`. The notifier methods are called from worker
threads by the core; the button, thread and command handlers from the bolt listeners (adapters/
channels/slack/inbound.py) after Slack has its answer.

Every claim, reply and resolve done in Slack lands in the audit log (`bot.audit`) as the console's
do, the actor being the Slack user: "Display Name (slack:U123)", the id because a display name is
anyone's to choose. A thread reply is taken once per Slack event (`{p:esc}:seen:slack:EVENT_ID`):
Slack delivers an event again when its first delivery was not acknowledged in time, and the
customer must not get the staff message twice.

Every post holding customers' words (the escalation post with its transcript, each relay) is
recorded against those customers (`bot.posts`), so erasing one of them deletes it
(`SlackAdapter.delete_post`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from slack_sdk.errors import SlackClientError

from adapters.channels.slack import format as fmt
from adapters.channels.slack.outbound import CHANNEL, SlackOutbound, api_error
from adapters.runtime.components import Components
from bot.audit import AuditLog, staff_actor
from bot.errors import REDIS_ERRORS
from bot.escalations import Escalation, EscalationError
from bot.keys import Keys
from bot.messages import InboundMessage
from bot.posts import PostLink

log = logging.getLogger("frontdesk.slack")

# How long a staff thread reply's event id is remembered: Slack redelivers within minutes, an hour is ample.
SEEN_EVENT_S = 3600


def slack_actor(user_id: str, name: str | None) -> str:
    """Who acted, for the audit log: the display name to read, the Slack id to trust."""
    return staff_actor(CHANNEL, user_id, name)


class SlackStaff:
    """`StaffNotifier` for Slack, and the handlers for staff's buttons, thread replies and slash commands."""

    def __init__(self, components: Components, outbound: SlackOutbound, support_channel: str | None) -> None:
        self.components = components
        self.outbound = outbound
        self.support_channel = support_channel
        self.keys = Keys(components.settings.redis_prefix)
        self._audit: AuditLog | None = None

    # ------------------------------------------------------------------ StaffNotifier
    @staticmethod
    def _link(escalation: Escalation) -> tuple[str, str] | None:
        channel, _, ts = (escalation.link(CHANNEL) or "").partition(":")
        return (channel, ts) if channel and ts else None

    def on_escalation(self, escalation: Escalation, transcript: list[dict]) -> bool:
        """Post the escalation (or, when re-announced, a reminder in its thread) to the support channel.

        False when Slack refused it after the retries (logged; the escalation stays in the queue).
        """
        if not self.support_channel:
            return True
        try:
            link = self._link(escalation)
            if escalation.reannounced and link:
                minutes = (time.time() - (escalation.created_at or time.time())) / 60
                self.outbound.post(channel=link[0], thread_ts=link[1], reply_broadcast=True,
                                   text=fmt.reminder_text(escalation, minutes))
                return True
            posted = self.outbound.post(channel=self.support_channel, **fmt.escalation_message(escalation, transcript))
            self._remember(_shown_customers(escalation, transcript), posted["channel"], posted["ts"])
            self.components.need("bot").queue.link(escalation.id, CHANNEL, f"{posted['channel']}:{posted['ts']}")
            return True
        except (SlackClientError, OSError) as exc:
            log.warning("Slack: posting escalation %s failed (%s)", escalation.id, api_error(exc))
            return False

    def on_customer_message(self, escalation: Escalation, text: str, author: str = "") -> bool:
        """The customer wrote while staff hold the conversation: show it in the escalation's thread (False: refused)."""
        link = self._link(escalation)
        if link is None:
            return True
        try:
            for piece in fmt.split_text(fmt.customer_relay_text(text)):
                posted = self.outbound.post(channel=link[0], thread_ts=link[1], text=piece)
                self._remember({(escalation.channel, author or escalation.user_id)}, posted["channel"], posted["ts"])
            return True
        except (SlackClientError, OSError) as exc:
            log.warning("Slack: relaying a customer message failed (%s)", api_error(exc))
            return False

    def on_status_change(self, escalation: Escalation) -> None:
        """Redraw the escalation post: who claimed or resolved it, and only the buttons that still apply."""
        link = self._link(escalation)
        if link is None:
            return
        try:
            transcript = self.components.need("bot").transcript(escalation.id)
            self.outbound.web.chat_update(channel=link[0], ts=link[1],
                                          **fmt.escalation_message(escalation, transcript))
            self._remember(_shown_customers(escalation, transcript), link[0], link[1])  # who wrote since
        except (SlackClientError, OSError, EscalationError) as exc:
            log.warning("Slack: updating escalation %s failed (%s)", escalation.id, api_error(exc))

    def _remember(self, customers: set[tuple[str, str]], channel: str, ts: str) -> None:
        """Record a post against the customers whose words it shows; a Redis failure costs only the record."""
        try:
            self.components.need("bot").posts.record(customers, PostLink(CHANNEL, channel, ts))
        except REDIS_ERRORS as exc:
            log.error("Slack: post %s not recorded for erasure (%s); delete it by hand if asked", ts,
                      type(exc).__name__)

    # ------------------------------------------------------------------ what staff do in Slack
    async def action(self, kind: str, body: dict, action: dict, respond) -> None:
        """A claim or resolve button on an escalation post."""
        escalation_id = str(action.get("value", ""))
        user = body.get("user") or {}
        agent = await asyncio.to_thread(self.outbound.user_name, user.get("id", ""),
                                        user.get("name") or user.get("username"))
        bot = self.components.need("bot")
        try:
            await asyncio.to_thread(bot.claim if kind == "claim" else bot.resolve, escalation_id, agent)
        except EscalationError as exc:
            await respond(text=f"Could not {kind} that: {fmt.escape(str(exc))}.", response_type="ephemeral",
                          replace_original=False)
            return
        await asyncio.to_thread(self.audit, slack_actor(user.get("id", ""), agent), f"escalation.{kind}",
                                escalation_id)

    async def thread_reply(self, event: dict, thread_ts: str, event_id: str | None = None) -> None:
        """A staff member's message in an escalation's thread: it goes to the customer, once per Slack event."""
        bot = self.components.need("bot")
        escalation = await asyncio.to_thread(bot.queue.find_by_link, CHANNEL, f"{event['channel']}:{thread_ts}")
        if escalation is None:
            return  # a thread that is not an escalation
        text = fmt.unescape(str(event.get("text") or "")).strip()
        if not text:
            return
        seen = self.keys.esc("seen", CHANNEL, event_id or f"{event['channel']}:{event.get('ts')}")
        if not await asyncio.to_thread(self.components.need("redis").set, seen, 1, nx=True, ex=SEEN_EVENT_S):
            log.info("Slack: staff reply %s delivered again; already taken", event_id)
            return
        agent = await asyncio.to_thread(self.outbound.user_name, event["user"])
        try:
            result = await asyncio.to_thread(bot.agent_reply, escalation.id, agent, text)
        except EscalationError as exc:
            await asyncio.to_thread(self.tell, event["channel"], event["user"], thread_ts,
                                    f"Not sent to the customer: {fmt.escape(str(exc))}.")
            return
        await asyncio.to_thread(self.audit, slack_actor(event["user"], agent), "escalation.reply", escalation.id)
        if not result.delivered:
            await asyncio.to_thread(self.tell, event["channel"], event["user"], thread_ts,
                                    "Not delivered: the customer's platform refused your message after retries. "
                                    "It is in the transcript, marked undelivered.")

    def audit(self, actor: str, action: str, target: str) -> None:
        """One audit entry for what a staff member did in Slack; a Redis failure is logged (the action happened)."""
        try:
            client = self.components.need("redis")
            if self._audit is None or self._audit.redis is not client:
                self._audit = AuditLog(client, self.keys, days=self.components.settings.audit_days)
            self._audit.record(actor, action, target)
        except REDIS_ERRORS as exc:
            log.error("audit entry not recorded: Redis is not answering (%s)", type(exc).__name__,
                      extra={"action": action})

    def tell(self, channel: str, user: str, thread_ts: str, text: str) -> None:
        """An ephemeral notice to one staff member in a thread (only they see it)."""
        try:
            self.outbound.web.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=text)
        except (SlackClientError, OSError) as exc:
            log.warning("Slack: ephemeral notice failed (%s)", api_error(exc))

    async def command(self, command: dict, respond) -> None:
        """`/frontdesk reload|queue`: the core's admin commands, so the allow-list is checked in one place."""
        words = str(command.get("text", "")).split()
        action = words[0].lower() if words else ""
        name = fmt.escape(str(command.get("command", "/frontdesk")))
        if action not in ("reload", "queue"):
            await respond(text=f"Usage: `{name} reload` reloads the FAQ, `{name} queue` lists open escalations.",
                          response_type="ephemeral")
            return
        user = str(command.get("user_id", ""))
        trigger = command.get("trigger_id")
        message = InboundMessage(CHANNEL, f"command:{user}", user, f"/{action}",
                                 message_id=f"command:{trigger}" if trigger else None,
                                 display_name=command.get("user_name"))
        bot = self.components.need("bot")
        handled = await asyncio.to_thread(bot.handle, message)
        if handled.duplicate:
            return
        text = "\n".join(fmt.escape(r.text) for r in handled.replies) or "Done."
        for piece in fmt.split_text(text):
            await respond(text=piece, response_type="ephemeral")


def _shown_customers(escalation: Escalation, transcript: list[dict]) -> set[tuple[str, str]]:
    """The escalation's customer and whoever else wrote in the part of the transcript an escalation post shows."""
    shown = {(escalation.channel, escalation.user_id)}
    for event in transcript[-fmt.TRANSCRIPT_EVENTS:]:
        if event.get("role") in ("customer", "unanswered"):
            author = event.get("author") or event.get("user_id")
            if author:
                shown.add((escalation.channel, str(author)))
    return shown
