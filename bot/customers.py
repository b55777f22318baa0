"""Customers' data rights: a copy of everything Frontdesk stores about one customer, and its erasure.

A customer is `(channel, user_id)`. What names them, by key family of `bot.keys`:

    {p:conv:CHANNEL:ID}:*      their conversations: every key under the tag (meta, transcript, sentiment,
                               inbox, processing, undelivered, seen ids, stored replies). A conversation is
                               theirs when its meta's `user_id` is theirs, or its id is their user id (REST
                               uses the sender as both)
    {p:esc}:ID                 escalation records whose channel and user_id are theirs, or whose conversation
                               is one of theirs; with their members of {p:esc}:all / {p:esc}:open and their
                               {p:esc}:link:PLATFORM:REF keys
    {p:pending}                members naming their conversations
    {p:rate:CHANNEL:USER}:*    their rate-limit windows
    {p:stats:DAY}:*            members and hash fields that are one of their conversation keys (the day's
                               conversations and escalated sets, and whatever else is counted per conversation);
                               the unanswered questions their messages added (found from the "unanswered"
                               events of their transcript, normalised as `bot.stats` stored them: one count
                               is taken off, and the text goes when no other customer asked it)
    {p:review}:user:CHANNEL:USER and the items it lists (`bot.review`, when that module exists:
                               `ReviewInbox.for_customer` / `erase_customer`); labelled FAQ alternates stay

Erasure deletes or scrubs all of that and answers with what it removed. It does not stop a
message of theirs being handled at that very moment from writing its answer afterwards;
erase again once they are gone. Escalation records and stats texts also expire on their own
(`EscalationQueue` retention, `BotStats`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import redis

from bot.keys import Keys
from bot.review import ReviewInbox
from bot.stats import DAY, normalise_question

# How to ask whether a stats key of each type holds a member (or field) named by a conversation key.
_MEMBER_CHECKS = {"set": "sismember", "zset": "zscore", "hash": "hexists"}


class CustomerData:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis = client
        self.keys = keys

    # ------------------------------------------------------------------ finding
    def conversations(self, channel: str, user_id: str) -> list[str]:
        """Conversation keys ("channel:id") that belong to this customer."""
        found = set()
        metas = list(self.redis.scan_iter(match=self.keys.channel_metas(channel), count=1000))
        if metas:
            pipe = self.redis.pipeline(transaction=False)
            for key in metas:
                pipe.hget(key, "user_id")
            for key, owner in zip(metas, pipe.execute(), strict=True):
                if owner is not None and _text(owner) == user_id:
                    found.add(self.keys.conversation_of_meta(_text(key)))
        own = f"{channel}:{user_id}"
        if own not in found and next(iter(self._conversation_keys(own)), None) is not None:
            found.add(own)
        return sorted(found)

    def _conversation_keys(self, conversation: str) -> Iterable[str]:
        return (_text(k) for k in self.redis.scan_iter(match=self.keys.pattern(f"conv:{conversation}"), count=1000))

    def _escalations(self, channel: str, user_id: str, conversations: set[str]) -> list[dict]:
        ids = [_text(i) for i in self.redis.zrange(self.keys.esc("all"), 0, -1)]
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for escalation_id in ids:
            pipe.hgetall(self.keys.esc(escalation_id))
        found = []
        for raw in pipe.execute():
            record = {_text(k): _text(v) for k, v in raw.items()}
            if (record.get("channel") == channel and record.get("user_id") == user_id) \
                    or record.get("conversation_id") in conversations:
                found.append(record)
        return found

    def _stats_keys(self) -> list[str]:
        return [_text(k) for k in self.redis.scan_iter(match=self.keys.all_stats(), count=1000)]

    def _stats_memberships(self, conversations: set[str]) -> list[tuple[str, str, str]]:
        """(key, type, member) for every stats member or hash field that is one of these conversation keys."""
        if not conversations:
            return []
        keys = self._stats_keys()
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        kinds = [_text(kind) for kind in pipe.execute()]
        candidates = [(key, kind, c) for key, kind in zip(keys, kinds, strict=True) if kind in _MEMBER_CHECKS
                      for c in sorted(conversations)]
        for key, kind, conversation in candidates:
            getattr(pipe, _MEMBER_CHECKS[kind])(key, conversation)
        return [found for found, present in zip(candidates, pipe.execute(), strict=True)
                if present not in (None, False, 0)]

    def _unanswered(self, transcripts: Iterable[list[dict]]) -> list[tuple[str, str]]:
        """(stats key, normalised question) for each unanswered message of theirs still counted in stats."""
        found = []
        for transcript in transcripts:
            for event in transcript:
                if event.get("role") != "unanswered" or not event.get("text"):
                    continue
                question = normalise_question(event["text"])
                at = float(event.get("at", time.time()))
                # The day the stats recorded it: the event's own, or a neighbour for a message at midnight.
                for moment in (at, at - DAY, at + DAY):
                    key = self.keys.stats(time.strftime("%Y-%m-%d", time.gmtime(moment)), "unanswered")
                    if question and self.redis.zscore(key, question) is not None:
                        found.append((key, question))
                        break
        return found

    def _review(self) -> ReviewInbox:
        """The review inbox, which keeps customers' texts (masked) with their channel and id."""
        return ReviewInbox(self.redis, self.keys)

    def _rate_keys(self, channel: str, user_id: str) -> list[str]:
        return [_text(k) for k in self.redis.scan_iter(match=self.keys.pattern(f"rate:{channel}:{user_id}"),
                                                       count=1000)]

    # ------------------------------------------------------------------ export
    def export(self, channel: str, user_id: str) -> dict:
        """Everything stored about the customer, as JSON-ready data."""
        conversations = self.conversations(channel, user_id)
        out_conversations = []
        transcripts = []
        for conversation in conversations:
            entry: dict = {"conversation_id": conversation, "meta": {}, "transcript": [], "other": {}}
            for key in sorted(self._conversation_keys(conversation)):
                part = key.partition("}:")[2]
                value = _dump(self.redis, key)
                if part == "meta":
                    entry["meta"] = value
                elif part == "history":
                    entry["transcript"] = [json.loads(e) for e in value]
                    transcripts.append(entry["transcript"])
                else:
                    entry["other"][part] = value
            entry["pending"] = self.redis.zscore(self.keys.pending(), conversation) is not None
            out_conversations.append(entry)
        escalations = self._escalations(channel, user_id, set(conversations))
        review = self._review()
        return {
            "channel": channel,
            "user_id": user_id,
            "exported_at": time.time(),
            "conversations": out_conversations,
            "escalations": escalations,
            "review_items": review.for_customer(channel, user_id),
            "rate_limit": {key: _dump(self.redis, key) for key in self._rate_keys(channel, user_id)},
            "statistics": {
                "counted_in": [{"key": key, "member": member}
                               for key, _, member in self._stats_memberships(set(conversations))],
                "unanswered_questions": [{"key": key, "question": q} for key, q in self._unanswered(transcripts)],
            },
        }

    # ------------------------------------------------------------------ erase
    def erase(self, channel: str, user_id: str) -> dict:
        """Delete every key and scrub every value that names the customer; what was removed, counted."""
        conversations = self.conversations(channel, user_id)
        transcripts = [self._history(c) for c in conversations]
        unanswered = self._unanswered(transcripts)
        memberships = self._stats_memberships(set(conversations))
        escalations = self._escalations(channel, user_id, set(conversations))
        review = self._review()
        review_removed = review.erase_customer(channel, user_id)

        rate_keys = self._rate_keys(channel, user_id)
        deleted_keys = list(rate_keys)
        pipe = self.redis.pipeline(transaction=False)  # one command per key: keys of many slots on a cluster
        for conversation in conversations:
            for key in self._conversation_keys(conversation):
                deleted_keys.append(key)
                pipe.delete(key)
            pipe.zrem(self.keys.pending(), conversation)
        for key in rate_keys:
            pipe.delete(key)
        for record in escalations:
            pipe.delete(self.keys.esc(record["id"]))
            pipe.zrem(self.keys.esc("all"), record["id"])
            pipe.zrem(self.keys.esc("open"), record["id"])
            for field, ref in record.items():
                if field.startswith("link:"):
                    pipe.delete(self.keys.esc("link", field.partition(":")[2], ref))
        for key, kind, member in memberships:
            {"set": pipe.srem, "zset": pipe.zrem, "hash": pipe.hdel}[kind](key, member)
        pipe.execute()
        for key, question in unanswered:
            if self.redis.zincrby(key, -1, question) <= 0:
                self.redis.zrem(key, question)
        return {
            "channel": channel,
            "user_id": user_id,
            "conversations": conversations,
            "keys_deleted": len(deleted_keys),
            "escalations": sorted(r["id"] for r in escalations),
            "rate_limit_keys": len(rate_keys),
            "statistics_entries": len(memberships),
            "unanswered_questions": len(unanswered),
            "review_items": review_removed,
        }

    def _history(self, conversation: str) -> list[dict]:
        return [json.loads(e) for e in self.redis.lrange(self.keys.conv(conversation, "history"), 0, -1)]


def _dump(client: redis.Redis, key: str):
    """A key's value by type, decoded for JSON."""
    kind = _text(client.type(key))
    if kind == "string":
        return _text(client.get(key))
    if kind == "hash":
        return {_text(k): _text(v) for k, v in client.hgetall(key).items()}
    if kind == "list":
        return [_text(v) for v in client.lrange(key, 0, -1)]
    if kind == "set":
        return sorted(_text(v) for v in client.smembers(key))
    if kind == "zset":
        return [[_text(m), s] for m, s in client.zrange(key, 0, -1, withscores=True)]
    if kind == "stream":
        return [{"id": _text(i), **{_text(k): _text(v) for k, v in f.items()}} for i, f in client.xrange(key)]
    return None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
