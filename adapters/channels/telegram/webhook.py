"""Webhook mode: `POST /telegram/webhook` (always mounted) and registering it with Telegram.

Telegram signs nothing; what proves a call comes from Telegram is the secret we gave it in
`setWebhook`, echoed in `X-Telegram-Bot-Api-Secret-Token`. Without a configured secret the
route refuses everything, in polling mode too, so a forgotten setting never opens it.
The route answers 200 only once the update is handled and its reply sent; anything else
makes Telegram deliver it again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from telegram import Update
from telegram.error import InvalidToken, TelegramError

from adapters.channels.telegram.adapter import CHANNEL, DeliveryFailed, TelegramAdapter
from adapters.channels.telegram.polling import ALLOWED_UPDATES
from adapters.http.dependencies import ComponentsDep
from bot.dispatch_records import HandlingTimeout

log = logging.getLogger("frontdesk.telegram")
router = APIRouter(tags=["telegram"])
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1_000_000  # real updates are a few kB


def _refuse(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


@router.post("/telegram/webhook", summary="Telegram updates (webhook mode)")
async def telegram_webhook(request: Request, components: ComponentsDep) -> JSONResponse:
    settings = components.settings
    if settings.telegram_bot_token is None:
        return _refuse(404, "Telegram is not configured on this server (TELEGRAM_BOT_TOKEN is not set)")
    if settings.telegram_webhook_secret is None:
        return _refuse(403, "TELEGRAM_WEBHOOK_SECRET is not set, so every webhook call is refused")
    supplied = request.headers.get(SECRET_HEADER, "")
    expected = settings.telegram_webhook_secret.get_secret_value()
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        return _refuse(401, f"missing or wrong {SECRET_HEADER}")
    body = await request.body()
    if len(body) > MAX_BODY:
        return _refuse(413, "update too large")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands of levels deep
        return _refuse(400, "body is not JSON")
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        return _refuse(400, "not a Telegram update: expected a JSON object with an integer update_id")
    adapter = components.channels.outputs.get(CHANNEL)
    if not isinstance(adapter, TelegramAdapter):
        return _refuse(503, "the Telegram adapter is still starting")
    try:
        update = Update.de_json(data, adapter.bot)
        if update.effective_message is not None and update.effective_message.chat is None:
            raise ValueError("message without a chat")
    except Exception as exc:  # PTB does not validate: malformed parts fail in many ways
        return _refuse(400, f"not a Telegram update ({type(exc).__name__})")
    components.need("bot")  # NotReady -> 503: Telegram tries again later
    try:
        await adapter.handle_update(update)
    except (DeliveryFailed, TelegramError, HandlingTimeout) as exc:
        log.warning("webhook update %s not answered: %s", update.update_id, type(exc).__name__)
        return _refuse(503, "the update could not be answered yet; deliver it again")
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # Malformed parts PTB let through surface only when read (a "text" that is a number, a lone surrogate
        # in it): refuse the update like one that fails to parse, and keep the trace in case it is ours.
        log.warning("webhook update %s is malformed", update.update_id, exc_info=True)
        return _refuse(400, f"not a Telegram update ({type(exc).__name__})")
    return JSONResponse({"ok": True})


async def register_webhook(adapter: TelegramAdapter, max_backoff: float = 60.0) -> None:
    """`setWebhook` with our URL and secret, retried until Telegram accepts it (or rejects the token)."""
    settings = adapter.components.settings
    secret = settings.telegram_webhook_secret.get_secret_value()
    backoff = 1.0
    while True:
        try:
            await adapter.ready()
            await adapter.call(lambda: adapter.bot.set_webhook(settings.telegram_webhook_url, secret_token=secret,
                                                               allowed_updates=ALLOWED_UPDATES))
            log.info("Telegram webhook registered at %s", settings.telegram_webhook_url)
            return
        except InvalidToken:
            log.error("Telegram rejected TELEGRAM_BOT_TOKEN; webhook not registered")
            return
        except (TelegramError, DeliveryFailed) as exc:
            log.warning("setWebhook failed (%s: %s); retrying in %.0f s", type(exc).__name__, exc, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)
