"""The Slack adapter: slack-bolt's AsyncApp in, slack_sdk's WebClient out, one bot core behind both.

`SlackAdapter` is what the server starts and registers: the "slack" `OutputChannel` and a
`StaffNotifier`. It puts together the three sides of the channel and runs their life cycle:
inbound (Slack's requests: signature checks, events, customers' messages and suggestion buttons;
adapters/channels/slack/inbound.py), outbound (posts with retries; outbound.py) and staff
(escalation posts, staff replies in threads, claim and resolve buttons; staff.py). `format.py`
shapes every message.
"""

from __future__ import annotations

import asyncio
import logging

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackClientError
from slack_sdk.web import WebClient

from adapters.channels.slack.inbound import IntakeError, SlackInbound
from adapters.channels.slack.outbound import CHANNEL, SlackDeliveryError, SlackOutbound, api_error, retry_handlers
from adapters.channels.slack.staff import SlackStaff
from adapters.runtime.components import Components
from bot.escalations import Escalation
from bot.messages import Reply

log = logging.getLogger("frontdesk.slack")

__all__ = ["CHANNEL", "IntakeError", "SlackAdapter", "SlackDeliveryError"]


class SlackAdapter:
    """`OutputChannel`, `StaffNotifier` and `PostRemover` for Slack, and the bolt app taking Slack's requests."""

    name = CHANNEL

    def __init__(self, components: Components) -> None:
        settings = components.settings
        assert settings.slack_bot_token is not None
        token = settings.slack_bot_token.get_secret_value()
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        self.components = components
        self.web = WebClient(token=token, base_url=settings.slack_api_url, timeout=10,
                             retry_handlers=retry_handlers())
        self.outbound = SlackOutbound(self.web)
        self.staff = SlackStaff(components, self.outbound, settings.slack_support_channel)
        self.inbound = SlackInbound(components, token, secret, settings.slack_api_url, self.outbound, self.staff)
        self.app = self.inbound.app
        self.http = self.inbound.http  # False in Socket Mode only: bolt has no HTTP handler without a secret
        self.socket = None  # the Socket Mode handler, when SLACK_APP_TOKEN is set (see `connect`)
        self._app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None

    # ------------------------------------------------------------------ life cycle
    async def connect(self) -> None:
        """Check the token once (so a wrong one shows up in the log at start) and open Socket Mode if set."""
        try:
            identity = await self.app.client.auth_test()
            log.info("Slack: connected as %s in team %s", identity.get("user"), identity.get("team"))
        except SlackClientError as exc:  # bolt retries auth.test per request; keep serving the other channels
            log.error("Slack: auth.test failed (%s); check SLACK_BOT_TOKEN", api_error(exc))
        if self._app_token:
            self.socket = AsyncSocketModeHandler(self.app, self._app_token)
            try:
                await self.socket.connect_async()
                log.info("Slack: Socket Mode connected")
            except Exception as exc:
                log.error("Slack: Socket Mode connection failed (%s); check SLACK_APP_TOKEN", api_error(exc))

    async def stop(self) -> None:
        if self.socket is not None:
            await self.socket.close_async()
        if self.inbound.tasks:  # answers being handled and posted: give them a moment to go out
            await asyncio.wait(set(self.inbound.tasks), timeout=15)

    # ------------------------------------------------------------------ the sides, as one adapter
    def send(self, conversation_id: str, reply: Reply, in_reply_to: str | None = None) -> None:
        """`OutputChannel.send`: into a DM or a channel thread (see outbound.py)."""
        self.outbound.send(conversation_id, reply, in_reply_to)

    def on_escalation(self, escalation: Escalation, transcript: list[dict]) -> bool:
        """`StaffNotifier`: post the escalation to the support channel (see staff.py)."""
        return self.staff.on_escalation(escalation, transcript)

    def on_customer_message(self, escalation: Escalation, text: str, author: str = "") -> bool:
        return self.staff.on_customer_message(escalation, text, author)

    def delete_post(self, channel: str, ts: str) -> None:
        """`PostRemover`: delete one of the bot's posts (an escalation post or relay) for a customer's erasure."""
        self.outbound.delete(channel, ts)

    def on_status_change(self, escalation: Escalation) -> None:
        self.staff.on_status_change(escalation)
