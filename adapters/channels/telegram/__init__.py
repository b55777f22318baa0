"""The Telegram channel, through python-telegram-bot.

Long polling by default; webhook mode (`POST /telegram/webhook`, checked against
`TELEGRAM_WEBHOOK_SECRET`) when `TELEGRAM_WEBHOOK_URL` is set. Private chats, and group
chats where the bot is @mentioned, replied to or given one of its commands. Modules:
`adapter` (updates to bot messages and replies back), `polling`, `webhook`, `format`
(mentions, HTML escaping, splitting, keyboards) and `logs` (keeping the token out of logs).
"""

from __future__ import annotations

import asyncio
import logging

from adapters.channels.telegram.adapter import CHANNEL, TelegramAdapter
from adapters.channels.telegram.polling import Poller
from adapters.channels.telegram.webhook import register_webhook, router
from adapters.runtime.components import Components

__all__ = ["CHANNEL", "TelegramAdapter", "router", "start"]
log = logging.getLogger("frontdesk.telegram")


async def start(components: Components) -> TelegramAdapter | None:
    """The running adapter, or None when `TELEGRAM_BOT_TOKEN` is unset.

    Network work (getMe, setWebhook or the first getUpdates) happens in the background, so
    an unreachable Telegram delays the channel, never the server's start.
    """
    settings = components.settings
    if settings.telegram_bot_token is None:
        return None
    adapter = TelegramAdapter.create(components)
    if settings.telegram_webhook_url:
        if settings.telegram_webhook_secret is None:
            log.error("TELEGRAM_WEBHOOK_URL is set but TELEGRAM_WEBHOOK_SECRET is not: the webhook is not "
                      "registered, and /telegram/webhook refuses every call until the secret is set")
        else:
            adapter.background.append(asyncio.get_running_loop().create_task(register_webhook(adapter)))
    else:
        poller = Poller(adapter)
        poller.start()
        adapter.poller = poller
    return adapter
