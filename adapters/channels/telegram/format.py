"""Turning Telegram messages into bot text and bot replies into Telegram messages.

Pure functions, no network: which group messages are meant for the bot (and the text
without the @mention), HTML-escaped chunks within Telegram's 4096-character limit, and
the inline keyboard that shows a reply's suggestions.
"""

from __future__ import annotations

import html
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, User

from adapters.channels.citations import PREFIX, cited
from bot.messages import Reply, Source

MAX_MESSAGE = 4096  # Telegram's limit, counted after HTML parsing, in UTF-16 code units
SUGGESTION_PREFIX = "fd:s:"  # callback_data of our suggestion buttons (at most 64 bytes, so an index, not the text)
COMMANDS = ("/start", "/help", "/human", "/reload", "/queue")  # what the core understands; see bot.core
GROUP_CHATS = ("group", "supergroup")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def _utf16_prefix(text: str, limit: int) -> str:
    """The longest prefix of `text` no longer than `limit` UTF-16 code units (never halving a character)."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return text[:index]
    return text


def split_text(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """`text` in pieces of at most `limit`, cut at a paragraph, else a line, else a word, else anywhere.

    A boundary is only used if it keeps at least half a message in the piece, so one early
    blank line does not produce a string of tiny messages.
    """
    pieces: list[str] = []
    rest = text.strip()
    while utf16_len(rest) > limit:
        window = _utf16_prefix(rest, limit)
        cut = -1
        for separator in ("\n\n", "\n", " "):
            position = window.rfind(separator)
            if position >= len(window) // 2:
                cut = position
                break
        piece, rest = (window, rest[len(window):]) if cut < 0 else (rest[:cut], rest[cut:])
        pieces.append(piece.rstrip())
        rest = rest.strip()
    if rest:
        pieces.append(rest)
    return pieces or [""]


def citation(source: Source | dict | None) -> tuple[str, str] | None:
    """(HTML, its text as Telegram counts it) for an article citation; None for an FAQ answer or none.

    "Source: " and `<a href="url">title › section</a>`, both escaped (the href with quotes), or
    the label as plain text where the URL is not http(s).
    """
    found = cited(source)
    if found is None:
        return None
    label, url = found
    text = html.escape(label, quote=False)
    if url:
        text = f'<a href="{html.escape(url, quote=True)}">{text}</a>'
    return f"{PREFIX}{text}", f"{PREFIX}{label}"


def render(reply: Reply) -> list[str]:
    """A reply as HTML message texts: escaped (customer and staff text is never markup), split to fit.

    An article citation goes under the answer in its last message, or in a message of its own
    when that one has no room left; it is never cut, so no piece ends inside its link.
    """
    label = f"{reply.agent}:" if reply.sender == "agent" and reply.agent else ""
    # The limit counts parsed text, so measure the raw text; the label takes one line of the first piece.
    header = utf16_len(label) + 1 if label else 0
    pieces = split_text(reply.text, MAX_MESSAGE - header)
    rendered = [html.escape(piece, quote=False) for piece in pieces]
    if label:
        rendered[0] = f"<b>{html.escape(label, quote=False)}</b>\n{rendered[0]}"
    cite = citation(reply.source)
    if cite is not None:
        markup, shown = cite
        used = utf16_len(pieces[-1]) + (header if len(pieces) == 1 else 0)
        if not rendered[-1]:
            rendered[-1] = markup
        elif used + 2 + utf16_len(shown) <= MAX_MESSAGE:
            rendered[-1] = f"{rendered[-1]}\n\n{markup}"
        else:
            rendered.append(markup)
    return rendered


def suggestion_keyboard(suggestions: tuple[str, ...]) -> InlineKeyboardMarkup | None:
    """One button per suggestion; the click comes back as a callback query naming the button by index."""
    if not suggestions:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=f"{SUGGESTION_PREFIX}{index}")]
                                 for index, text in enumerate(suggestions)])


def suggestion_text(message: Message | None, data: str | None) -> str | None:
    """The text of the suggestion button a callback query names, read from the message it was clicked on."""
    if not data or not data.startswith(SUGGESTION_PREFIX) or message is None:
        return None
    markup = getattr(message, "reply_markup", None)  # absent when Telegram no longer has the message
    for row in getattr(markup, "inline_keyboard", ()) or ():
        for button in row:
            if button.callback_data == data:
                return button.text
    return None


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the UTF-16 `(offset, length)` spans removed (entity offsets are in UTF-16 units)."""
    units = text.encode("utf-16-le")
    for offset, length in sorted(spans, reverse=True):
        units = units[:offset * 2] + units[(offset + length) * 2:]
    return re.sub(r"[ \t]{2,}", " ", units.decode("utf-16-le")).strip()


def message_text(message: Message, me: User) -> str | None:
    """What the customer said to the bot, or None when the message is not for the bot.

    Private chats: everything. Groups: only messages that @mention the bot, reply to one
    of its messages, or use one of its commands; the mention itself is removed. Commands
    lose their `@botname` suffix (and the core's own commands their arguments) so the core sees `/help`.
    Returns "" for a message meant for the bot that has no text (a sticker, a photo).
    """
    if message.text is None and message.caption is None and message.effective_attachment is None:
        return None  # service messages: someone joined, a pinned message, a new chat title
    text = message.text if message.text is not None else message.caption or ""
    entities = message.entities if message.text is not None else message.caption_entities
    username = (me.username or "").lower()
    addressed = message.chat.type == "private"
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == me.id:
        addressed = True
    mentions: list[tuple[int, int]] = []
    command: str | None = None
    for entity in entities or ():
        value = text.encode("utf-16-le")[entity.offset * 2:(entity.offset + entity.length) * 2].decode("utf-16-le")
        named = entity.type == MessageEntity.MENTION and value.lower() == f"@{username}"
        linked = entity.type == MessageEntity.TEXT_MENTION and entity.user is not None and entity.user.id == me.id
        if named or linked:
            mentions.append((entity.offset, entity.length))
        elif entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            name, _, target = value.partition("@")
            if target and target.lower() != username:
                return None  # a command for another bot in the same group
            if target or name.lower() in COMMANDS:  # bare "/help" in a group: the bot's own command
                command = name.lower()
                mentions.append((0, entity.length))
    if mentions:
        addressed = True
    if not addressed or message.chat.type not in ("private", *GROUP_CHATS):
        return None
    rest = _without(text, mentions)
    if command is not None:
        # The core matches its commands on the whole text; arguments (a deep-link payload) carry nothing for it.
        return command if command in COMMANDS else f"{command} {rest}".strip()
    if rest or message.effective_attachment is not None:
        return rest
    return "/help"  # only "@bot": tell them what the bot can do
