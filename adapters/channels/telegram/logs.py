"""Keeping the bot token out of log lines.

The token is part of every Bot API URL (`https://api.telegram.org/bot<token>/sendMessage`),
so httpx's request log (INFO), PTB's start-up log (DEBUG) and some PTB error messages
contain it. Whatever log configuration the operator has, the records of those loggers
and of ours pass a filter that replaces the token; httpx's per-request INFO lines,
noise in any case, are switched off unless someone chose a level for them.
"""

from __future__ import annotations

import logging
import threading

LOGGER_PREFIXES = ("telegram", "httpx", "httpcore", "frontdesk")
_tokens: set[str] = set()
_lock = threading.Lock()


def redact(text: str) -> str:
    """`text` with every bot token this process knows replaced."""
    for token in _tokens:
        if token in text:
            text = text.replace(token, "<TELEGRAM_BOT_TOKEN>")
    return text


class TokenFilter(logging.Filter):
    """Rewrites a record's message (and traceback) without the token; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set, so the traceback is written redacted too.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = TokenFilter()


def protect_token(token: str) -> None:
    """Redact `token` from the loggers that can see it (call before creating the PTB `Bot`)."""
    with _lock:
        _tokens.add(token)
        # A logger's filters see only its own records, not its children's, so each logger gets one.
        names = [name for name in list(logging.root.manager.loggerDict)
                 if name.split(".")[0] in LOGGER_PREFIXES]
        for name in {*names, *LOGGER_PREFIXES, "telegram.Bot", "frontdesk.telegram"}:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
        httpx_logger = logging.getLogger("httpx")
        if httpx_logger.level == logging.NOTSET:
            httpx_logger.setLevel(logging.WARNING)
