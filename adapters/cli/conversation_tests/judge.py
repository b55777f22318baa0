"""One step's expectations against what the bot did: the replies, the hand-off state, the model's reading.

The hand-off state and the classification are asked for only when a step checks them (`--url` makes each a
request, and a server may not hand them out without the admin token). A reply "answers" with the entry or
article it cites; the bot "declines" when it cites nothing and offers suggestions or says it did not
understand (the templates' `fallback` and `offer_human` texts).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from adapters.cli.conversation_tests.spec import Check, Expectation, Step
from bot.messages import Reply
from bot.templates import Templates

SHOWN_CHARS = 240  # of the replies, in a failure message


@dataclass(frozen=True)
class HandOff:
    escalated: bool  # staff hold the conversation (waiting for one, or claimed)
    handed_back: bool  # staff held it during this test and gave it back to the bot


@dataclass(frozen=True)
class Classification:
    intent: str
    sentiment: str
    out_of_scope: bool


@dataclass(frozen=True)
class Mismatch:
    check: Check
    expected: str
    got: str
    line: int  # the expectation's, in the test file


def not_understood_texts(templates: Templates) -> frozenset[str]:
    """What the bot says when it does not know (every variant), to tell a decline from an answer."""
    texts: set[str] = set()
    for name in ("fallback", "offer_human"):
        entry = templates.data.get(name)
        texts.update(str(v) for v in (entry if isinstance(entry, list) else [entry] if entry else []))
    return frozenset(texts)


def shown(replies: list[Reply]) -> str:
    text = " | ".join(r.text for r in replies) or "(no reply)"
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


class Judge:
    def __init__(self, not_understood: frozenset[str]):
        self.not_understood = not_understood

    def step(self, step: Step, replies: list[Reply], hand_off: Callable[[], HandOff],
             classify: Callable[[], Classification]) -> list[Mismatch]:
        """Every expectation of `step` that did not hold."""
        out = []
        for e in step.expect:
            got = self._got(e, replies, hand_off, classify)
            if got is not None:
                out.append(Mismatch(e.check, _expected(e), got, e.line))
        return out

    def _got(self, e: Expectation, replies: list[Reply], hand_off: Callable[[], HandOff],
             classify: Callable[[], Classification]) -> str | None:
        """What came back, when it is not what `e` expects; None when it is."""
        cited = [r.source.id for r in replies if r.source is not None]
        suggested = [s.id for r in replies for s in r.suggestion_sources if s is not None]
        text = "\n".join(r.text for r in replies)
        match e.check:
            case Check.ANSWER:
                ok = any(i in e.value for i in cited)
                return None if ok else (f"answered {', '.join(cited)}" if cited else f"no answer: {shown(replies)}")
            case Check.SUGGESTIONS:
                missing = [i for i in e.value if i not in suggested]
                return None if not missing else f"suggested {', '.join(suggested) or 'nothing'}: {shown(replies)}"
            case Check.DECLINED:
                declined = not cited and any(r.suggestions or r.text in self.not_understood for r in replies)
                return _flag(e, declined, f"{'declined' if declined else 'not declined'}: {shown(replies)}")
            case Check.ESCALATED:
                escalated = hand_off().escalated
                return _flag(e, escalated, f"{'escalated' if escalated else 'not escalated'}: {shown(replies)}")
            case Check.HANDED_BACK:
                back = hand_off().handed_back
                return _flag(e, back, f"{'handed back' if back else 'not handed back'}: {shown(replies)}")
            case Check.INTENT | Check.SENTIMENT | Check.OUT_OF_SCOPE:
                value = getattr(classify(), str(e.check))
                return None if value == e.value else f"{e.check} {_show(value)}"
            case Check.REPLY_CONTAINS:
                missing = [s for s in e.value if s.lower() not in text.lower()]
                return None if not missing else shown(replies)
            case Check.REPLY_MATCHES:
                return None if re.search(str(e.value), text) else shown(replies)
        raise AssertionError(e.check)  # pragma: no cover - every Check is handled above


def _flag(e: Expectation, actual: bool, got: str) -> str | None:
    return None if actual == e.value else got


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _expected(e: Expectation) -> str:
    if isinstance(e.value, tuple):
        joined = " or ".join(e.value) if e.check == Check.ANSWER else ", ".join(e.value)
        return f"{e.check}: {joined}"
    return f"{e.check}: {_show(e.value)}"
