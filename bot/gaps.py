"""What customers ask that the bot cannot answer: topics of the unanswered messages, and an entry drafted from one.

The messages are the review inbox's (`bot.review`) of a window of days, for every reason the bot
did not answer: a fallback, suggestions instead of an answer that the customer did not take (their
next message was not one of them), an escalation, a low-confidence answer, a message staff answered
by hand; dismissed items are left out. Each keeps the masked
text, its conversation, its negative score and the embedding retrieval computed for it, so
grouping them (`group`, knowledge.topics through the wiring layer) embeds only the few that have
none (an escalation decided before the search).

Per topic: `size` (messages), `escalated` (its conversations that reached a person, or were
answered by staff), `negative` (its conversations with a message at or over the negative line),
`trend` (size against the window before it: +0.5 is half as many again; null when the topic is
new, with `previous` = 0), masked `examples`, the most central first. Rule: impact is
size × (1 + escalated) × (1 + negative), and the list is ranked by it. A topic the knowledge base
now covers drops out: when most of its examples would be answered today (`decide`, the bot's own
rule: an entry added and reloaded since), it is no longer a gap.

A topic's id is a hash of its most central text: stable while the topic keeps its centre. What a
draft needs is kept under it for `TOPIC_TTL_S`: the ids of its review items, never their words (an
erasure deletes the items, and the topic forgets them with it). A draft (`draft`) proposes an FAQ
entry: the central text as the question, other texts of the topic as alternates, and as the
answer the most representative staff reply in its conversations (the one closest to all the
others), masked; empty when staff never replied.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import redis

from bot.keys import Keys
from bot.replay import BotDecision, Choice
from bot.review import ReviewInbox, mask
from bot.store import ConversationStore

DAY = 86_400
UNANSWERED = ("fallback", "suggested", "escalated", "low_confidence", "answered_by_staff")
REACHED_A_PERSON = ("escalated", "answered_by_staff")
NEGATIVE_LINE = 0.5
EXAMPLES = 5
ALTERNATES = 8
LONGEST = 500  # characters of a question or alternate an approved entry takes (adapters/http/topics_admin.py)
TOPIC_TTL_S = 7 * DAY
SAME_TOPIC = 0.45  # cosine similarity: a message of the window before joins the nearest topic above it (trend)


class TopicLike(Protocol):
    """What the grouping hands back per topic (`knowledge.topics.TopicGroup` has this shape)."""

    members: tuple[int, ...]
    centroid: np.ndarray
    label: str
    size: int


Group = Callable[[list[str], np.ndarray, list[int]], Sequence[TopicLike]]  # texts, vectors, weights -> topics
Embed = Callable[[list[str]], np.ndarray]
Decide = Callable[[list[str]], list[BotDecision]]


class TopicNotFound(LookupError):
    """No topic of that id in the last `TOPIC_TTL_S` (or every message of it was erased)."""


@dataclass(frozen=True)
class Topic:
    id: str
    label: str
    size: int
    escalated: int
    negative: int
    previous: int
    examples: tuple[str, ...]

    @property
    def trend(self) -> float | None:
        return round(self.size / self.previous - 1, 3) if self.previous else None

    @property
    def impact(self) -> int:
        return self.size * (1 + self.escalated) * (1 + self.negative)

    def to_dict(self) -> dict:
        return {"id": self.id, "label": self.label, "size": self.size, "escalated": self.escalated,
                "negative": self.negative, "trend": self.trend, "previous": self.previous,
                "impact": self.impact, "examples": list(self.examples)}


@dataclass
class _Texts:
    """The window's unanswered messages, one row per distinct text."""

    texts: list[str]
    weights: list[int]
    items: list[list[dict]]  # the review items of each text
    vectors: np.ndarray


class Gaps:
    def __init__(self, review: ReviewInbox, store: ConversationStore, client: redis.Redis, keys: Keys, *,
                 group: Group, embed: Embed, decide: Decide, clock: Callable[[], float] = time.time):
        self.review, self.store, self.redis, self.keys = review, store, client, keys
        self.group, self.embed, self.decide, self.clock = group, embed, decide, clock

    # ------------------------------------------------------------------ topics
    def topics(self, days: int = 7) -> list[Topic]:
        """The window's topics, most impact first (see the module docstring)."""
        now = self.clock()
        current = self._texts(now - days * DAY, now)
        if not current.texts:
            return []
        groups = self.group(current.texts, current.vectors, current.weights)
        before = self._texts(now - 2 * days * DAY, now - days * DAY)
        previous = self._previous_sizes(groups, before)
        found = []
        for group, earlier in zip(groups, previous, strict=True):
            items = [item for i in group.members for item in current.items[i]]
            conversations: dict[str, list[dict]] = {}
            for item in items:
                conversations.setdefault(_conversation(item), []).append(item)
            examples = tuple(current.texts[i] for i in group.members[:EXAMPLES])
            topic = Topic(_topic_id(current.texts[group.members[0]]), group.label, group.size,
                          escalated=sum(any(i["reason"] in REACHED_A_PERSON for i in its)
                                        for its in conversations.values()),
                          negative=sum(any((i.get("negative") or 0) >= NEGATIVE_LINE for i in its)
                                       for its in conversations.values()),
                          previous=earlier, examples=examples)
            found.append((topic, [item["id"] for item in items], [current.texts[i] for i in group.members]))
        covered = self._covered([texts for _, _, texts in found])
        kept = [(topic, ids) for (topic, ids, _), gone in zip(found, covered, strict=True) if not gone]
        self._remember(kept)
        return sorted((topic for topic, _ in kept), key=lambda t: (-t.impact, -t.size, t.label))

    def _texts(self, since: float, until: float) -> _Texts:
        ids = self.redis.zrangebyscore(self.keys.review("all"), since, until)
        by_text: dict[str, list[dict]] = {}  # one row per text up to case and spacing; shown as first written
        found = [item for item in self.review.items(ids) if item.get("reason") in UNANSWERED
                 and item.get("status") != "dismissed" and item.get("text")]
        clicked = self._clicked([item for item in found if item["reason"] == "suggested"])
        for item in found:
            if item["id"] not in clicked:
                by_text.setdefault(" ".join(item["text"].lower().split()), []).append(item)
        items = list(by_text.values())
        texts = [its[0]["text"].strip() for its in items]
        return _Texts(texts, [len(i) for i in items], items, self._vectors(texts, items))

    def _clicked(self, suggested: list[dict]) -> set[str]:
        """The ids of suggested items whose customer took one of the suggestions (their next message was one of
        them, as a click sends it): answered after all, so no gap. One transcript read per conversation."""
        conversations = sorted({_conversation(item) for item in suggested})
        if not conversations:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for conversation in conversations:
            pipe.lrange(self.keys.conv(conversation, "history"), 0, -1)
        histories = {c: [json.loads(e) for e in events] for c, events in zip(conversations, pipe.execute(),
                                                                              strict=True)}
        clicked = set()
        for item in suggested:
            offered: list[str] | None = None
            for event in histories[_conversation(item)]:
                if float(event.get("at", 0)) < float(item.get("at", 0)) - 1:
                    continue
                if offered is None and event.get("role") == "bot" and event.get("suggestions"):
                    offered = [" ".join(str(s).lower().split()) for s in event["suggestions"]]
                elif offered is not None and event.get("role") == "customer":
                    if " ".join(str(event.get("text", "")).lower().split()) in offered:
                        clicked.add(item["id"])
                    break
        return clicked

    def _vectors(self, texts: list[str], items: list[list[dict]]) -> np.ndarray:
        """Each text's embedding as retrieval stored it with one of its items; the missing ones embedded now."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        raws = self.redis.mget([self.keys.review("vec", its[0]["id"]) for its in items])
        missing = [i for i, raw in enumerate(raws) if raw is None]
        fresh = np.asarray(self.embed([texts[i] for i in missing]), dtype=np.float32) if missing else None
        rows = [np.frombuffer(raw, dtype=np.float16).astype(np.float32) if raw is not None else None for raw in raws]
        if fresh is not None:
            for row, i in zip(fresh, missing, strict=True):
                rows[i] = row
        width = {len(r) for r in rows}
        if len(width) != 1:  # an embedding of another encoder (FRONTDESK_FAQ_ENCODER changed): all again, alike
            return np.asarray(self.embed(texts), dtype=np.float32)
        return np.stack(rows)

    def _previous_sizes(self, groups: Sequence[TopicLike], before: _Texts) -> list[int]:
        if not groups or not before.texts or before.vectors.shape[1] != groups[0].centroid.shape[0]:
            return [0] * len(groups)
        centroids = np.stack([g.centroid for g in groups])
        vectors = before.vectors / np.maximum(np.linalg.norm(before.vectors, axis=1, keepdims=True), 1e-12)
        similarity = vectors @ centroids.T
        nearest = similarity.argmax(axis=1)
        sizes = [0] * len(groups)
        for row, topic in enumerate(nearest):
            if similarity[row, topic] >= SAME_TOPIC:
                sizes[topic] += before.weights[row]
        return sizes

    def _covered(self, topics: list[list[str]]) -> list[bool]:
        """Per topic: would most of its examples be answered now (the knowledge base covers it since)?"""
        samples = [texts[:EXAMPLES] for texts in topics]
        flat = [text for sample in samples for text in sample]
        decided = iter(self.decide(flat)) if flat else iter(())
        covered = []
        for sample in samples:
            answered = sum(next(decided).choice == Choice.ANSWER for _ in sample)
            covered.append(answered * 2 > len(sample))
        return covered

    def _remember(self, topics: list[tuple[Topic, list[str]]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for topic, item_ids in topics:
            pipe.set(self.keys.review("topic", topic.id), json.dumps({"label": topic.label, "items": item_ids}),
                     ex=TOPIC_TTL_S)
        pipe.execute()

    # ------------------------------------------------------------------ drafts
    def draft(self, topic_id: str) -> dict:
        """`{"question", "alternates", "answer", "topic", "label", "staff_replies"}` (see the module docstring)."""
        raw = self.redis.get(self.keys.review("topic", topic_id))
        if raw is None:
            raise TopicNotFound(f"no topic {topic_id!r} in the last {TOPIC_TTL_S // DAY} days: list the topics again")
        record = json.loads(raw)
        items = self.review.items(record["items"])
        if not items:
            raise TopicNotFound(f"every message of topic {topic_id!r} has been erased or has expired")
        by_text: dict[str, int] = {}
        for item in items:
            by_text[item["text"]] = by_text.get(item["text"], 0) + 1
        texts = list(by_text)
        vectors = self._vectors(texts, [[next(i for i in items if i["text"] == t)] for t in texts])
        centre = vectors.mean(axis=0)
        ranked = [texts[i] for i in np.argsort(-(vectors @ centre), kind="stable")]
        replies = self._staff_replies(items)
        fits = [text for text in ranked if len(text) <= LONGEST] or [ranked[0][:LONGEST]]  # what an entry takes
        return {"topic": topic_id, "label": record["label"], "question": fits[0],
                "alternates": fits[1:1 + ALTERNATES], "answer": self._representative(replies),
                "staff_replies": len(replies)}

    def owners(self, topic_id: str, texts: list[str]) -> list[tuple[str, str, str]]:
        """(channel, user_id, text) for each of `texts` that is a message of the topic: whose words an approved
        entry's alternates are (bot.learned erases them with their author). A topic no longer kept: none."""
        raw = self.redis.get(self.keys.review("topic", topic_id))
        items = self.review.items(json.loads(raw)["items"]) if raw is not None else []
        wanted = set(texts)
        return sorted({(item["channel"], item["user_id"], item["text"]) for item in items if item["text"] in wanted})

    def _staff_replies(self, items: list[dict]) -> list[str]:
        """What staff wrote in the topic's conversations after the customer's message, masked."""
        replies: list[str] = []
        seen: set[str] = set()
        for item in items:
            conversation = _conversation(item)
            if conversation in seen:
                continue
            seen.add(conversation)
            name = self.store.meta(conversation).get("display_name", "")
            for event in self.store.history(conversation):
                if event.get("role") == "agent" and float(event.get("at", 0)) >= float(item.get("at", 0)) \
                        and event.get("text"):
                    replies.append(_unnamed(mask(event["text"]), name))
        return replies

    def _representative(self, replies: list[str]) -> str:
        distinct = list(dict.fromkeys(r for r in replies if r.strip()))
        if len(distinct) <= 1:
            return distinct[0] if distinct else ""
        vectors = np.asarray(self.embed(distinct), dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        closeness = (vectors @ vectors.T).sum(axis=1)
        return distinct[int(np.argmax(closeness))]


def _conversation(item: dict) -> str:
    """The item's conversation (items from before it was kept: the customer's direct conversation)."""
    return item.get("conversation") or f"{item['channel']}:{item['user_id']}"


def _topic_id(central_text: str) -> str:
    return hashlib.sha256(central_text.encode()).hexdigest()[:12]


def _unnamed(text: str, name: str) -> str:
    """A staff reply without the customer's name in it ("Hi Alice, ..." -> "Hi <name>, ...")."""
    return text.replace(name, "<name>") if name and len(name) > 1 else text
