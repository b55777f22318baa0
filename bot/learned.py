"""FAQ entries approved from the topics of unanswered questions, kept for the whole fleet.

An admin approves a drafted entry (`POST /admin/kb/entries`); it is kept here, in Redis, and every
worker writes the approved entries into the knowledge folder's `learned.yaml` before it reloads
(knowledge.learned), so the entry is live on every worker after the reload that follows.

Rule: customers' words become alternates only through this approval, and stay only as long as
their authors' data does. With each alternate taken from a topic's messages the entry keeps who
wrote it (channel and user, the same pseudonymous key the review inbox files items under); erasing
that customer removes those alternates (`erase_customer`), and the caller reloads.

Keys (`bot.keys.Keys.learned`, one hash tag): entries (hash: id -> entry JSON), owners (hash: id ->
JSON list of [channel, user_id, text]).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis

from bot.keys import Keys


class EntryClash(ValueError):
    """An approved entry whose id the knowledge base already has."""


class LearnedEntries:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis = client
        self.keys = keys

    def all(self) -> list[dict]:
        """Every approved entry, in the order of their ids (so the file is the same on every worker)."""
        raw = self.redis.hgetall(self.keys.learned("entries"))
        return [json.loads(raw[key]) for key in sorted(raw)]

    def ids(self) -> set[str]:
        return {k.decode() if isinstance(k, bytes) else k for k in self.redis.hkeys(self.keys.learned("entries"))}

    def add(self, entry: dict, owners: Iterable[tuple[str, str, str]] = ()) -> None:
        """Keep `entry` (`id`, `question`, `answer`, `alternates`, ...); `owners`: (channel, user_id, text) of each
        alternate taken from a customer's message. `EntryClash` when the id is taken already."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(self.keys.learned("entries"), entry["id"], json.dumps(entry, ensure_ascii=False))
        pipe.hset(self.keys.learned("owners"), entry["id"], json.dumps([list(o) for o in owners]))
        added, _ = pipe.execute()
        if not added:
            raise EntryClash(f"an approved entry {entry['id']!r} exists already")

    def remove(self, entry_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.learned("entries"), entry_id)
        pipe.hdel(self.keys.learned("owners"), entry_id)
        removed, _ = pipe.execute()
        return bool(removed)

    def for_customer(self, channel: str, user_id: str) -> list[dict]:
        """`[{"faq_id", "text"}]`: the alternates of approved entries that are this customer's words."""
        return [{"faq_id": entry_id, "text": text} for entry_id, owners in self._owners().items()
                for c, u, text in owners if (c, u) == (channel, user_id)]

    def erase_customer(self, channel: str, user_id: str) -> int:
        """Take this customer's words out of every approved entry's alternates; how many went."""
        removed = 0
        for entry_id, owners in self._owners().items():
            theirs = {text for c, u, text in owners if (c, u) == (channel, user_id)}
            if not theirs:
                continue
            raw = self.redis.hget(self.keys.learned("entries"), entry_id)
            pipe = self.redis.pipeline(transaction=True)
            if raw is not None:
                entry = json.loads(raw)
                kept = [a for a in entry.get("alternates", []) if a not in theirs]
                removed += len(entry.get("alternates", [])) - len(kept)
                pipe.hset(self.keys.learned("entries"), entry_id, json.dumps({**entry, "alternates": kept},
                                                                             ensure_ascii=False))
            pipe.hset(self.keys.learned("owners"), entry_id,
                      json.dumps([o for o in owners if (o[0], o[1]) != (channel, user_id)]))
            pipe.execute()
        return removed

    def _owners(self) -> dict[str, list[list[str]]]:
        raw = self.redis.hgetall(self.keys.learned("owners"))
        return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}
