"""The Telegram adapter: updates in (from the poller or the webhook), replies out, through python-telegram-bot.

Every update, however it arrived, goes through `handle_update`, which returns only once
the reply has reached Telegram (or Telegram refused it for good). The poller confirms an
update's offset, and the webhook answers 200, only after that, so a crash or a failed
send mid-message means Telegram delivers the update again; the core's de-duplication by
`message_id` then keeps the customer from being answered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import warnings
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from telegram import Bot, CallbackQuery, Message, ReplyParameters, Update, User
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from adapters.channels.telegram.format import message_text, render, suggestion_keyboard, suggestion_text
from adapters.channels.telegram.logs import protect_token
from adapters.runtime.components import Components
from bot.messages import InboundMessage, Reply

CHANNEL = "telegram"
NON_TEXT = ("Thanks! I can only read text messages, so I can't look at stickers, photos, voice messages or files. "
            "Could you type your question?")
log = logging.getLogger("frontdesk.telegram")
T = TypeVar("T")


class DeliveryFailed(RuntimeError):
    """Telegram could not be reached to deliver a reply; the update should come again."""


def retry_seconds(exc: RetryAfter) -> float:
    """`RetryAfter.retry_after` as seconds, whichever type this PTB version hands out."""
    with warnings.catch_warnings():  # PTB 22 warns that the int form will become a timedelta
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


class TelegramAdapter:
    """`OutputChannel` for Telegram, and the one place updates are turned into bot messages."""

    name = CHANNEL
    attempts = 3  # per API call, for flood control and network errors
    backoff = (0.5, 1.5)  # seconds between network-error attempts
    max_flood_wait = 30.0  # longer RetryAfter waits give up instead of holding a message that long
    send_timeout = 60.0  # how long a staff action waits for its message to reach Telegram

    def __init__(self, components: Components, bot: Bot, loop: asyncio.AbstractEventLoop):
        self.components = components
        self.bot = bot
        self.loop = loop
        self._init_lock = asyncio.Lock()
        self._me: User | None = None
        # Message ids this process took on but did not finish answering, and those it is answering now
        # (only touched on the event loop, so no lock).
        self._in_flight: set[str] = set()
        self.background: list[asyncio.Task] = []  # webhook registration: cancelled on stop
        self.sending: list[asyncio.Task] = []  # staff messages sent from the loop's own thread: awaited on stop
        self.poller = None  # the `polling.Poller` in polling mode

    @classmethod
    def create(cls, components: Components) -> TelegramAdapter:
        settings = components.settings
        token = settings.telegram_bot_token.get_secret_value()
        protect_token(token)  # before the Bot exists: PTB logs its API URL, token included, at DEBUG
        # Replies to many chats go out at once; PTB's pool timeout of 1 s is too tight for that.
        request = HTTPXRequest(connection_pool_size=32, pool_timeout=10.0, read_timeout=15.0, connect_timeout=10.0)
        bot = Bot(token, base_url=settings.telegram_api_url, request=request)
        return cls(components, bot, asyncio.get_running_loop())

    # ------------------------------------------------------------------ Telegram API calls
    async def ready(self) -> User:
        """The bot's own user (getMe, once): needed to recognise mentions and replies in groups."""
        if self._me is None:
            async with self._init_lock:
                if self._me is None:
                    try:
                        await self.call(self.bot.initialize)
                    except InvalidToken:  # PTB's message quotes the token
                        raise InvalidToken("Telegram rejected TELEGRAM_BOT_TOKEN") from None
                    self._me = self.bot.bot
        return self._me

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """One Bot API call with bounded retries: waits out flood control, retries network errors.

        Raises `DeliveryFailed` when Telegram stayed unreachable; other `TelegramError`s
        (a bad request, a blocked bot) propagate, as retrying them cannot help.
        """
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            try:
                return await make()
            except RetryAfter as exc:
                wait = retry_seconds(exc)
                if last or wait > self.max_flood_wait:
                    raise DeliveryFailed(f"Telegram flood control asks to wait {wait:.0f} s") from None
                log.warning("Telegram flood control: waiting %.0f s", wait)
                await asyncio.sleep(wait)
            except BadRequest:
                raise  # a subclass of NetworkError, but the request itself is wrong
            except NetworkError as exc:
                if last:
                    raise DeliveryFailed(f"Telegram unreachable: {type(exc).__name__}: {exc}") from None
                log.warning("Telegram API call failed (%s: %s), retrying", type(exc).__name__, exc)
                await asyncio.sleep(self.backoff[min(attempt, len(self.backoff) - 1)])
        raise AssertionError("unreachable")

    async def deliver(self, chat_id: int, replies: list[Reply], reply_to: int | None = None) -> None:
        """Send `replies` in order; the first piece answers `reply_to` (in groups, so it is clear whom).

        Raises `DeliveryFailed` if Telegram could not be reached; a message Telegram refuses
        (the user blocked the bot, the chat is gone) is logged and dropped, as a retry would fail again.
        """
        for reply in replies:
            pieces = render(reply)
            for index, piece in enumerate(pieces):
                markup = suggestion_keyboard(reply.suggestions) if index == len(pieces) - 1 else None
                answer = (ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                          if reply_to is not None else None)
                sent_to = await self._send_piece(chat_id, piece, markup, answer)
                if sent_to is None:
                    return  # refused for good: the rest would be refused too, and out of context anyway
                chat_id = sent_to
                reply_to = None

    async def _send_piece(self, chat_id: int, text: str, markup, answer: ReplyParameters | None) -> int | None:
        """Send one HTML message; the chat id it reached (groups migrate), or None if Telegram refused it."""
        for _ in range(2):
            try:
                await self.call(partial(self.bot.send_message, chat_id, text, parse_mode=ParseMode.HTML,
                                        reply_markup=markup, reply_parameters=answer))
                return chat_id
            except ChatMigrated as exc:  # a group became a supergroup: same chat, new id
                chat_id = exc.new_chat_id
            except TelegramError as exc:
                log.warning("Telegram refused a message (%s: %s); dropped", type(exc).__name__, exc)
                return None
        return None

    # ------------------------------------------------------------------ updates in
    async def handle_update(self, update: Update) -> None:
        """Handle one update completely: the core's answer is at Telegram when this returns.

        Raises `DeliveryFailed` when the answer could not be sent, or the core's `HandlingTimeout`:
        either way the update must come again, and then the answer this process still owes is sent.
        """
        if update.callback_query is not None:
            await self._on_callback(update.callback_query)
            return
        message = update.message  # edited messages, channel posts, member updates: nothing to answer
        if message is None or message.from_user is None or message.from_user.is_bot:
            return
        me = await self.ready()
        text = message_text(message, me)
        if text is None:
            return
        in_group = message.chat.type != "private"
        reply_to = message.message_id if in_group else None
        if not text:  # a sticker, photo, voice message...: no text for the NLU to read
            templates = self.components.need("bot").templates
            polite = templates.say("non_text") if templates.has("non_text") else NON_TEXT
            await self.deliver(message.chat_id, [Reply(polite)], reply_to)
            return
        await self._converse(message.chat_id, message.from_user, text, f"{message.chat_id}:{message.message_id}")

    async def _on_callback(self, query: CallbackQuery) -> None:
        """A suggestion button: the button's text goes to the core as if the customer had typed it."""
        message = query.message if isinstance(query.message, Message) else None
        text = suggestion_text(message, query.data)
        with contextlib.suppress(TelegramError, DeliveryFailed):  # only stops the button's spinner
            await self.call(lambda: query.answer(None if text else "This button has expired."))
        if text is None or message is None:
            return
        await self._converse(message.chat_id, query.from_user, text, f"{message.chat_id}:cb:{query.id}")

    async def _converse(self, chat_id: int, user: User, text: str, message_id: str) -> None:
        """Hand the message to the core, which answers it through `send`; raise if the answer did not arrive.

        The core passes the message id back to `send`, which quotes it in groups. A failed
        answer raises `DeliveryFailed`, so the update comes again and the core sends the answer
        it still owes (a redelivery of an answered message is not answered twice).
        """
        bot = self.components.need("bot")
        inbound = InboundMessage(CHANNEL, str(chat_id), str(user.id), text, message_id=message_id,
                                 display_name=user.first_name)
        if message_id in self._in_flight:
            return  # Telegram retrying a webhook call still being answered: that one sends the reply
        self._in_flight.add(message_id)
        try:
            handled = await asyncio.to_thread(bot.receive, inbound)
        finally:
            self._in_flight.discard(message_id)
        if not handled.queued:
            raise DeliveryFailed("Redis did not take the message")
        if handled.delivered is False:
            raise DeliveryFailed("Telegram refused the answer")

    # ------------------------------------------------------------------ OutputChannel
    def send(self, conversation_id: str, reply: Reply, in_reply_to: str | None = None) -> None:
        """Answers, staff messages and the hand-back (called from the bot's worker threads).

        In a group the answer quotes the message it answers (`in_reply_to`, "chat:message"),
        so it is clear whom it is for; in a private chat there is no doubt.
        """
        chat_id = int(conversation_id)
        reply_to = _quoted(chat_id, in_reply_to)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:  # cannot block the loop we need: send in the background
            task = self.loop.create_task(self.deliver(chat_id, [reply], reply_to))
            self.sending.append(task)
            task.add_done_callback(self.sending.remove)
            return
        asyncio.run_coroutine_threadsafe(self.deliver(chat_id, [reply], reply_to), self.loop).result(self.send_timeout)

    async def stop(self) -> None:
        """Stop polling (after the batch in hand), finish sends under way, close the HTTP pool."""
        if self.poller is not None:
            await self.poller.stop()
        for task in self.background:
            task.cancel()
        for task in list(self.sending):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        with contextlib.suppress(Exception):
            await self.bot.shutdown()


def _quoted(chat_id: int, in_reply_to: str | None) -> int | None:
    """The Telegram message id an answer should quote: only in groups (negative chat ids), only real messages."""
    if chat_id >= 0 or not in_reply_to:
        return None
    _, _, message = in_reply_to.partition(":")
    return int(message) if message.isdigit() else None
