"""The citation under a knowledge-base answer: what every channel shows, before its own escaping.

A reply quoting a help-center article carries its `Source` ("title › section" and a link);
each channel renders it natively under the answer as "Source: " and the label, linked to the
article where the URL is an absolute http(s) one and shown as plain text otherwise (a
`javascript:` or relative URL never becomes a link). FAQ answers cite nothing. Transcript
events (Redis) carry the source as `Source.to_dict()`, so both forms are accepted here.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from bot.messages import Source, SourceKind

PREFIX = "Source: "
LABEL_LIMIT = 300  # characters: a citation is one short line on every platform
URL_LIMIT = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_UNSAFE_IN_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def safe_url(url: str) -> str:
    """`url` if it is an absolute http or https URL with a host and no whitespace or control characters, else ""."""
    if not url or len(url) > URL_LIMIT or _UNSAFE_IN_URL.search(url):
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed IPv6 host
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    return url


def cited(source: Source | dict | None) -> tuple[str, str] | None:
    """(label, safe URL or "") for an article source, None for an FAQ answer or no source.

    The label is one line (control characters and line breaks become spaces) of at most
    `LABEL_LIMIT` characters, never empty: the URL or the article id stand in for a missing title.
    """
    try:
        if isinstance(source, dict):
            source = Source.from_dict(source)
        if source is None or source.kind is not SourceKind.ARTICLE:
            return None
        url = safe_url(source.url)
        label = _CONTROL.sub(" ", source.label).strip() or url or str(source.id)
    except (AttributeError, KeyError, TypeError, ValueError):  # a stored event with a source we cannot read
        return None
    if len(label) > LABEL_LIMIT:
        label = label[:LABEL_LIMIT - 1] + "…"
    return label, url
