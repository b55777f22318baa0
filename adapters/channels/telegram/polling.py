"""Long polling: our own getUpdates loop, so an update is confirmed only after it was answered.

Telegram counts an update as delivered once `getUpdates` is called with an offset above
its id. PTB's `Updater` raises the offset as soon as updates are fetched and hands them
to handlers that may still be running when the next call confirms them, so a crash there
loses the message. Here each batch is handled completely (chats in parallel, each chat's
messages in order) before the next call, and the offset only moves past updates that were
handled. An update that failed is fetched again; one that fails `max_attempts` times is
given up on, logged, so a single poisonous update cannot stop the bot.

Telegram answers 409 Conflict to a second concurrent `getUpdates` for one bot, so with
several workers only the one holding the `telegram-poller` role polls (`bot.roles`); the
others check every few seconds and take over when it stops, or when it died and its
lease ran out (a long poll plus 30 s). Updates wait at Telegram meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from telegram import Update
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError

from adapters.channels.telegram.adapter import DeliveryFailed, TelegramAdapter, retry_seconds

ALLOWED_UPDATES = ("message", "callback_query")
ROLE = "telegram-poller"
log = logging.getLogger("frontdesk.telegram")


class Poller:
    max_attempts = 3
    max_backoff = 30.0
    standby_s = 5.0  # how often a standing-by worker checks whether the poller role is free

    def __init__(self, adapter: TelegramAdapter, timeout: int = 30):
        self.adapter = adapter
        self.timeout = timeout  # seconds Telegram holds an empty getUpdates open
        self.offset: int | None = None
        self.failures: dict[int, int] = {}
        self.stopping = False
        self.handling = False  # a batch is in hand: let it finish before stopping
        self.task: asyncio.Task | None = None
        self.lease = None  # this process's claim on the poller role, once the bot is loaded
        self.standing_by = False  # another worker polls
        self.polls = 0  # getUpdates calls made

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name="telegram-polling")

    async def run(self) -> None:
        bot = self.adapter.bot
        backoff = 1.0
        webhook_deleted = False
        while not self.stopping:
            if self.adapter.components.bot is None:  # answering needs the core; fetch nothing before
                await asyncio.sleep(0.5)
                continue
            if not await self._play_role():
                await asyncio.sleep(self.standby_s)
                continue
            try:
                await self.adapter.ready()
                if not webhook_deleted:  # getUpdates answers 409 while a webhook is registered
                    await bot.delete_webhook(drop_pending_updates=False)
                    webhook_deleted = True
                self.polls += 1
                updates = await bot.get_updates(offset=self.offset, timeout=self.timeout,
                                                allowed_updates=ALLOWED_UPDATES)
            except InvalidToken:
                log.error("Telegram rejected TELEGRAM_BOT_TOKEN; polling stopped")
                return
            except RetryAfter as exc:
                await asyncio.sleep(retry_seconds(exc))
                continue
            except (TelegramError, DeliveryFailed) as exc:
                hint = " (another process polling with this token?)" if isinstance(exc, Conflict) else ""
                log.warning("getUpdates failed: %s: %s%s; retrying in %.0f s", type(exc).__name__, exc, hint, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = 1.0
            if updates:
                self.handling = True
                try:
                    self.offset = await self.handle_batch(updates)
                finally:
                    self.handling = False

    async def _play_role(self) -> bool:
        """Take or renew the poller role; False while another worker holds it (or Redis is away)."""
        if self.lease is None:
            self.lease = self.adapter.components.bot.role(ROLE, ttl_s=self.timeout + 30)
        try:
            holding = await asyncio.to_thread(self.lease.hold)
        except Exception as exc:  # without Redis no message can be handled anyway: wait for it
            log.warning("cannot check the Telegram poller role (%s); retrying", type(exc).__name__)
            return False
        if holding == self.standing_by:
            log.info("Telegram polling: %s", "taking over" if holding else "another worker polls; standing by")
        self.standing_by = not holding
        return holding

    async def handle_batch(self, updates: tuple[Update, ...]) -> int:
        """Handle a batch; the offset confirming exactly the updates that are done."""
        by_chat: dict[object, list[Update]] = defaultdict(list)
        for update in updates:
            chat = update.effective_chat
            by_chat[chat.id if chat is not None else ("update", update.update_id)].append(update)
        failed = [uid for uid in await asyncio.gather(*(self._handle_chat(group) for group in by_chat.values()))
                  if uid is not None]
        # Everything below the first failure is confirmed; anything above it that was handled comes
        # again and is recognised as a duplicate by the core.
        return min(failed) if failed else max(u.update_id for u in updates) + 1

    async def _handle_chat(self, updates: list[Update]) -> int | None:
        """One chat's updates in order; the id of the first that failed (and must come again), if any."""
        for update in updates:
            try:
                await self.adapter.handle_update(update)
            except Exception as exc:
                count = self.failures.get(update.update_id, 0) + 1
                if count >= self.max_attempts:
                    self.failures.pop(update.update_id, None)
                    log.error("giving up on Telegram update %s after %d attempts", update.update_id, count,
                              exc_info=not isinstance(exc, DeliveryFailed))
                    continue
                self.failures[update.update_id] = count
                log.warning("Telegram update %s not handled (%s: %s); it will be fetched again",
                            update.update_id, type(exc).__name__, exc)
                return update.update_id
            self.failures.pop(update.update_id, None)
        return None

    async def stop(self) -> None:
        """Finish the batch in hand, then confirm it, so a clean restart redelivers nothing."""
        self.stopping = True
        if self.task is None:
            return
        if not self.handling:  # waiting on Telegram or sleeping: nothing is lost by cancelling
            self.task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 15)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()
        except Exception:
            log.exception("Telegram polling ended with an error")
        if self.offset is not None and not self.standing_by:
            with contextlib.suppress(Exception):  # offset only: the updates it returns stay unconfirmed
                await self.adapter.bot.get_updates(offset=self.offset, timeout=0, limit=1)
        if self.lease is not None and not self.standing_by:
            with contextlib.suppress(Exception):  # hand over now rather than when the lease runs out
                await asyncio.to_thread(self.lease.release)
