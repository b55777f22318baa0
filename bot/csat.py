"""Satisfaction ratings (CSAT) after a staff hand-off.

When staff resolve an escalation the bot asks the customer for a rating from 1 to 5, with
the numbers as suggestions (Slack buttons, a Telegram inline keyboard, web chat buttons;
a typed number counts just the same). The question is remembered in the conversation's
meta (`csat_pending` = the escalation id, `csat_agent`, `csat_asked_at`), so whichever
worker takes the customer's next message knows it is waiting for one. The first message
that reads as a rating while one is pending is stored -- on the escalation record
(`rating`, `rated_at`), in the transcript, and in the day's statistics with the agent
(`bot.stats`) -- thanked, and not treated as a question. Anything else is answered as
usual and the question stays open until `PENDING_SECONDS` pass or the customer is handed
to staff again.
"""

from __future__ import annotations

import re
import time

from bot.effects import CountRating
from bot.escalations import EscalationQueue
from bot.store import ConversationStore

RATINGS = ("1", "2", "3", "4", "5")
PENDING_SECONDS = 24 * 3600  # a "3" typed days later is more likely a quantity than a rating
ASK_DEFAULT = "How did we do? Please rate the help you got from 1 (poor) to 5 (excellent)."
THANKS_DEFAULT = "Thank you for your rating! Anything else I can help with?"

# "4", "4/5", "4 out of 5", "4 stars", "rating: 4", a star emoji row; nothing with other words in it.
_RATING = re.compile(r"^\s*(?:(?:rating|rate|score)\s*[:=]?\s*)?([1-5])\s*(?:/\s*5|out of 5|stars?|!|\.)?\s*$",
                     re.IGNORECASE)
_STARS = re.compile(r"^\s*(⭐|★){1,5}\s*$")


def parse_rating(text: str) -> int | None:
    """The rating 1-5 a message gives, or None when it is not one."""
    match = _RATING.match(text)
    if match:
        return int(match.group(1))
    if _STARS.match(text):
        return sum(1 for c in text if c in "⭐★")
    return None


def pending(meta: dict, now: float | None = None) -> str | None:
    """The escalation id a rating would be for, when the conversation's meta says one is awaited."""
    escalation_id = meta.get("csat_pending")
    if not escalation_id:
        return None
    asked = float(meta.get("csat_asked_at") or 0)
    now = time.time() if now is None else now
    return escalation_id if now - asked <= PENDING_SECONDS else None


def ask_fields(escalation_id: str, agent: str, now: float | None = None) -> dict[str, str]:
    """The conversation meta fields that mark a rating as awaited."""
    return {"csat_pending": escalation_id, "csat_agent": agent,
            "csat_asked_at": str(time.time() if now is None else now)}


CLEARED = {"csat_pending": None, "csat_agent": None, "csat_asked_at": None}


def ask_text(templates) -> str:
    return templates.say("csat_ask") if templates.has("csat_ask") else ASK_DEFAULT


def thanks_text(templates) -> str:
    return templates.say("csat_thanks") if templates.has("csat_thanks") else THANKS_DEFAULT


def store_rating(queue: EscalationQueue, store: ConversationStore, conversation: str, escalation_id: str,
                 agent: str, rating: int, now: float) -> CountRating:
    """Keep a rating on the escalation record and in the conversation (meta and transcript); the day's
    statistics count it through the returned effect, once the message is committed (bot.effects)."""
    queue.rate(escalation_id, rating, now)
    store.update(conversation, last_rating=rating, **CLEARED)
    store.append(conversation, "system", f"rated {rating}/5", escalation_id=escalation_id, rating=rating, agent=agent)
    return CountRating(agent, rating)
