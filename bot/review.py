"""The review inbox: every message the bot was unsure of, kept for staff to label (docs/MODEL_LIFECYCLE.md).

Recorded from the core (`bot.core`), one call per place the bot was unsure: a fallback, a
suggestion instead of an answer, an escalation, an answer given with low intent confidence,
and a conversation staff answered by hand. Each item keeps the text with e-mail addresses,
phone and card numbers masked, what the model and the FAQ thought (intent, confidence, best
entry and score, model version), why it is there, the channel and customer, and the time.

Staff label an item with an intent (an existing one or a new name), with an FAQ entry, or
dismiss it. Intent labels are exported as a `text,intent` CSV that `frontdesk train` takes
beside the original data. An FAQ label would put the customer's words into the FAQ: an admin's
becomes an alternate of that entry on the next FAQ reload (`faq_alternates`, merged by the wiring
layer: `knowledge/` never imports `bot/`); an agent's waits as a proposal for an admin to approve
or reject (`bot.review_proposals`).

Similar items share a `group` (the same text once normalised: case, spacing, numbers), so a
question many customers ask is labelled once for all of them (`label(..., group=True)`).
Items expire after the retention (`FRONTDESK_REVIEW_DAYS`, default 30): customers' words are
personal data. Approved FAQ alternates stay, part of the knowledge base, until the customer
whose words they are is erased (`bot.customers`).

Keys (`bot.keys.Keys.review`, one hash tag so each change is one MULTI on a cluster too):
item:ID (hash, TTL), vec:ID (the message's embedding, float16, same TTL), all (sorted set by time), seq,
group:G (set), user:CHANNEL:USER (set), faq-alternates, alternate-owners and proposals (hashes,
`bot.review_proposals`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable

import numpy as np
import redis

from bot.escalations import Escalation
from bot.keys import Keys
from bot.review_proposals import FaqProposals

log = logging.getLogger(__name__)

DAY = 86_400
REASONS = ("fallback", "low_confidence", "suggested", "escalated", "answered_by_staff")
LOW_CONFIDENCE = 0.6  # an answer given on an intent confidence under this is worth a look
MAX_TEXT = 1000

# The same shapes adapters/runtime/logs.py masks in log lines (bot/ cannot import adapters/).
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{6,}\d(?!\d)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"\d+")


def mask(text: str) -> str:
    """`text` with e-mail addresses, card numbers (13-19 digits) and phone numbers (7+ digits) replaced."""
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub(lambda m: "[card]" if sum(c.isdigit() for c in m.group()) >= 13 else m.group(), text)
    return _PHONE.sub(lambda m: m.group() if _DATE.fullmatch(m.group().strip())
                      or sum(c.isdigit() for c in m.group()) < 7 else "[phone]", text)


def group_of(masked_text: str) -> str:
    """The group id of a (masked) text: its normalised form (case, spacing, numbers), hashed."""
    normal = " ".join(_NUMBER.sub("#", masked_text.casefold()).split())
    return hashlib.sha256(normal.encode()).hexdigest()[:12]


class ReviewError(LookupError):
    """An unknown item id (the routes answer 404)."""


class ReviewInbox:
    def __init__(self, client: redis.Redis, keys: Keys, *, retention_s: float = 30 * DAY,
                 low_confidence: float = LOW_CONFIDENCE, clock: Callable[[], float] = time.time):
        self.redis = client
        self.keys = keys
        self.retention_s = retention_s
        self.low_confidence = low_confidence
        self.clock = clock
        self.proposals = FaqProposals(client, keys, clock=clock)

    # ------------------------------------------------------------------ recording (from bot.core)
    def record(self, reason: str, *, text: str, channel: str, user_id: str, result=None, decision=None,
               delivery_id: str | None = None, conversation: str | None = None) -> str | None:
        """Keep one message for review; returns its id. Never raises: review must not cost a customer a reply.

        `delivery_id`: which delivery of a message this is (the dispatcher's `uid`, else the platform's id). A
        message handled a second time (a worker died after handling it, before acknowledging it) keeps the item
        its first handling wrote, and gets its id back.
        """
        try:
            return self._record(reason, text, channel, user_id, result, decision, delivery_id, conversation)
        except redis.RedisError as exc:
            log.warning("review item not recorded: Redis unavailable (%s)", type(exc).__name__)
            return None

    def record_message(self, message, reason: str, result=None, decision=None) -> str | None:
        """`record` for an `InboundMessage` (what the core has at hand)."""
        return self.record(reason, text=message.text, channel=message.channel, user_id=message.user_id,
                           result=result, decision=decision, delivery_id=message.uid or message.message_id,
                           conversation=message.conversation_key)

    def note_answer(self, message, result, decision=None) -> str | None:
        """An answer was given: recorded only when the intent confidence behind it was low."""
        confidence = getattr(result, "confidence", 1.0)
        if confidence >= self.low_confidence:
            return None
        return self.record_message(message, "low_confidence", result, decision)

    def staff_answered(self, escalation: Escalation, transcript: Callable[[], list[dict]]) -> str | None:
        """Staff answer a conversation by hand: its last customer message is what the bot could not.

        Called before the staff reply is added (`transcript` reads the conversation's recent events); a
        customer message staff already answered is not recorded again. Never raises, like `record`.
        """
        try:
            events = transcript()
        except redis.RedisError:
            return None
        for event in reversed(events):
            if event.get("role") == "agent":
                return None
            if event.get("role") == "customer" and event.get("text") and not event["text"].startswith("/"):
                return self.record("answered_by_staff", text=event["text"], channel=escalation.channel,
                                   user_id=escalation.user_id, conversation=escalation.conversation_id)
        return None

    def _record(self, reason: str, text: str, channel: str, user_id: str, result, decision,
                delivery_id: str | None, conversation: str | None) -> str:
        if reason not in REASONS:
            raise ValueError(f"unknown review reason {reason!r}")
        masked = mask(text.strip())[:MAX_TEXT]
        if not masked:
            return ""
        # Per customer, so erasing the customer erases these too. Checked, then written in the same MULTI as
        # the item: a worker dying between the two leaves neither, so the next handling writes the item. Two
        # handlings of one message never overlap (they hold the conversation's lease, bot.dispatch).
        seen = self.keys.review("seen", channel, user_id)
        if delivery_id and (first := self.redis.hget(seen, delivery_id)):
            return first.decode() if isinstance(first, bytes) else first
        now = self.clock()
        ttl = int(self.retention_s)
        item_id = str(self.redis.incr(self.keys.review("seq")))
        best = getattr(decision, "best", None) if decision is not None else None
        group = group_of(masked)
        item = {"id": item_id, "text": masked, "reason": reason, "channel": channel, "user_id": user_id,
                "at": now, "group": group, "status": "new",
                "intent": getattr(result, "intent", None), "confidence": getattr(result, "confidence", None),
                "model_version": getattr(result, "model_version", None) or None,
                "faq_id": best.id if best is not None else None,
                "faq_score": round(float(best.score), 4) if best is not None else None,
                "conversation": conversation, "negative": _negative(result)}
        vector = getattr(decision, "vector", None) if decision is not None else None
        pipe = self.redis.pipeline(transaction=True)
        if delivery_id:
            pipe.hset(seen, delivery_id, item_id)
            pipe.expire(seen, ttl)
        pipe.set(self.keys.review("item", item_id), json.dumps(item), ex=ttl)
        if vector is not None:  # the search's embedding of the message, half precision: topics reuse it (bot.gaps)
            pipe.set(self.keys.review("vec", item_id), np.asarray(vector, dtype=np.float16).tobytes(), ex=ttl)
        pipe.zadd(self.keys.review("all"), {item_id: now})
        pipe.zremrangebyscore(self.keys.review("all"), "-inf", now - self.retention_s)
        for key in (self.keys.review("group", group), self.keys.review("user", channel, user_id)):
            pipe.sadd(key, item_id)
            pipe.expire(key, ttl)
        pipe.execute()
        return item_id

    # ------------------------------------------------------------------ reading
    def get(self, item_id: str) -> dict:
        raw = self.redis.get(self.keys.review("item", item_id))
        if raw is None:
            raise ReviewError(f"no review item {item_id!r}")
        return json.loads(raw)

    def items(self, ids: list) -> list[dict]:
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
        if not ids:
            return []
        raws = self.redis.mget([self.keys.review("item", i) for i in ids])
        return [json.loads(raw) for raw in raws if raw is not None]  # expired ones are simply gone

    def list(self, limit: int = 200, status: str | None = None) -> list[dict]:
        """Newest first; `status` new, labelled or dismissed."""
        self.redis.zremrangebyscore(self.keys.review("all"), "-inf", self.clock() - self.retention_s)
        items: list[dict] = []
        start, page = 0, max(limit, 100)
        while len(items) < limit:  # page through the index, so a long inbox is never read whole for a short list
            ids = self.redis.zrevrange(self.keys.review("all"), start, start + page - 1)
            if not ids:
                break
            items.extend(i for i in self.items(ids) if not status or i["status"] == status)
            start += page
        return items[:limit]

    def labelled(self) -> list[dict]:
        """Items labelled with an intent (the ones a model can be scored on), oldest first."""
        return [i for i in reversed(self.list(limit=10**6, status="labelled")) if i.get("label_intent")]

    def export_rows(self) -> list[tuple[str, str]]:
        """`(text, intent)` of the intent-labelled items, one per distinct text (its first wording)."""
        rows: dict[str, tuple[str, str]] = {}
        for item in self.labelled():
            rows.setdefault(" ".join(item["text"].casefold().split()), (item["text"], item["label_intent"]))
        return list(rows.values())

    def faq_alternates(self) -> dict[str, list[str]]:
        """FAQ entry id -> approved texts for it, to add as that entry's alternates on the next reload."""
        return self.proposals.alternates()

    # ------------------------------------------------------------------ labelling
    def label(self, item_id: str, *, intent: str | None = None, faq_id: str | None = None, dismiss: bool = False,
              by: str | None = None, group: bool = False, approved: bool = False) -> list[dict]:
        """Label one item (or, with `group`, every item of its group); returns the items changed.

        An FAQ label adds the item's text to that entry only when `approved` (an admin labels it); otherwise
        it becomes a pending proposal (`self.proposals`), named on each item changed as `faq_proposal`.
        """
        if sum((intent is not None, faq_id is not None, bool(dismiss))) != 1:
            raise ValueError("give exactly one of intent, faq_id or dismiss")
        item = self.get(item_id)
        ids = [item_id]
        if group:
            ids = [i.decode() if isinstance(i, bytes) else i
                   for i in self.redis.smembers(self.keys.review("group", item["group"]))] or [item_id]
        changed = []
        now = self.clock()
        proposal = None
        if faq_id is not None and not approved:
            proposal = self.proposals.propose(item, faq_id, by).id
        for current in self.items(sorted(ids, key=int)):
            current.update({"status": "dismissed" if dismiss else "labelled", "label_intent": intent,
                            "label_faq": faq_id, "labelled_by": by, "labelled_at": now, "faq_proposal": proposal})
            key = self.keys.review("item", current["id"])
            ttl = self.redis.ttl(key)
            self.redis.set(key, json.dumps(current), ex=ttl if ttl and ttl > 0 else int(self.retention_s))
            changed.append(current)
        if faq_id is not None and approved:
            self.proposals.add_alternate(faq_id, item["text"], (item["channel"], item["user_id"]))
        return changed

    # ------------------------------------------------------------------ one customer's data
    def for_customer(self, channel: str, user_id: str) -> list[dict]:
        """Every item of one customer still kept (for their data export)."""
        ids = self.redis.smembers(self.keys.review("user", channel, user_id))
        return sorted(self.items(list(ids)), key=lambda i: i["at"])

    def erase_customer(self, channel: str, user_id: str) -> int:
        """Delete every item of one customer (erasure); returns how many. Their FAQ proposals and alternates go
        through `self.proposals.erase_customer`."""
        user_key = self.keys.review("user", channel, user_id)
        ids = [i.decode() if isinstance(i, bytes) else i for i in self.redis.smembers(user_key)]
        items = self.items(ids)
        pipe = self.redis.pipeline(transaction=True)
        for item in items:
            pipe.delete(self.keys.review("item", item["id"]), self.keys.review("vec", item["id"]))
            pipe.srem(self.keys.review("group", item["group"]), item["id"])
        if ids:
            pipe.zrem(self.keys.review("all"), *ids)
        pipe.delete(user_key, self.keys.review("seen", channel, user_id))
        pipe.execute()
        return len(items)


def _negative(result) -> float | None:
    """The message's negative-sentiment score, for topics that count how many turned negative."""
    scores = getattr(result, "sentiment_scores", None)
    return round(float(scores.get("negative", 0.0)), 4) if scores else None
