"""Structured JSON logs with personal data and secrets masked before anything is written.

One formatter for every logger (ours, uvicorn's, the SDKs'), so a customer's e-mail
address, phone or card number that reaches a log line through any path is masked, and so
is anything shaped like a Slack or Telegram token. Conversation ids travel as a field
(`extra={"conversation": ...}`), never inside the message text.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time

from adapters.runtime.settings import LogSettings

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# 13-19 digits, optionally grouped by spaces or dashes: card numbers (checked before phones, which are shorter).
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
PHONE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{6,}\d(?!\d)")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2})?")  # looks like a phone number to PHONE; is not one
SECRETS = (
    re.compile(r"xox[abposr]-[A-Za-z0-9-]{8,}"),  # Slack tokens
    re.compile(r"xapp-[A-Za-z0-9-]{8,}"),  # Slack app-level tokens
    re.compile(r"\d{6,12}:[A-Za-z0-9_-]{30,}"),  # Telegram bot tokens (also inside API URLs: .../bot<token>/)
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # The web chat's session id is the customer's credential; uvicorn logs the socket's URL with it
    # ('"WebSocket /web/ws?session=..." [accepted]'). Past the socket only its hash is used (adapters.channels.web).
    re.compile(r"(?i)([?&]session=)[^&\s\"']+"),
)
EXTRA_FIELDS = ("conversation", "channel", "intent", "outcome", "escalation", "status", "replies", "duplicate", "ms")


def mask(text: str) -> str:
    """`text` with e-mail addresses, card and phone numbers and tokens replaced by placeholders."""
    for pattern in SECRETS:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + "[secret]", text)
    text = EMAIL.sub("[email]", text)
    text = CARD.sub(lambda m: "[card]" if sum(c.isdigit() for c in m.group()) >= 13 else m.group(), text)
    return PHONE.sub(lambda m: m.group() if DATE.fullmatch(m.group().strip()) or sum(c.isdigit() for c in m.group())
                     < 7 else "[phone]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, masked message, known extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for field in EXTRA_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = mask(str(value))
        if record.exc_info:
            entry["error"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class MaskingTextFormatter(logging.Formatter):
    """Human-readable lines for a terminal (`FRONTDESK_LOG_FORMAT=text`), masked the same way."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def logging_config(level: str | None = None, fmt: str | None = None) -> dict:
    """A `logging.config.dictConfig` dict; also handed to uvicorn so its workers log the same way."""
    configured = LogSettings() if level is None or fmt is None else None
    level = (level or configured.level).upper()
    fmt = fmt or configured.format
    formatter = ({"()": JsonFormatter} if fmt == "json"
                 else {"()": MaskingTextFormatter, "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn installs its own handlers; route them through ours instead.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            # HTTP client libraries log request URLs, and a Telegram URL contains the bot token.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    logging.config.dictConfig(logging_config(level, fmt))
