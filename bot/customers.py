"""Customers' data rights: a copy of everything Frontdesk stores about one customer, and its erasure.

A customer is `(channel, user_id)`. What names them, by key family of `bot.keys`:

    {p:conv:CHANNEL:ID}:*      their conversations: those whose meta names them as its customer (`user_id`) or
                               a member (`member:USER`: they wrote in it), and the one whose id is their user
                               id (REST uses the sender as both). One only they wrote in is theirs whole; in
                               one shared with others (a group, a thread) their part is their own events and
                               what is stored for their messages (`bot.customer_conversations`); a whole
                               one's keys include the topics the bot answered there lately (`:answered`,
                               `bot.resolution`), which name no one and stay with a shared one
    {p:esc}:ID                 escalation records whose channel and user_id are theirs, or whose conversation
                               is wholly theirs; with their members of {p:esc}:all / {p:esc}:open and their
                               {p:esc}:link:PLATFORM:REF keys
    {p:pending}                members naming conversations wholly theirs
    {p:rate:CHANNEL:USER}:*    their rate-limit windows, and {p:escrate:CHANNEL:USER}:* their escalation limit's
    {p:stats:DAY}:*            members and hash fields that are one of their whole conversations' keys; the
                               words their messages added (`asked`, `unanswered`; bot.customer_stats)
    {p:posts:CHANNEL:USER}     the bot's posts on staff platforms holding their words (`bot.posts`): deleted
                               there through the platform's `PostRemover`
    {p:review}:*               their review items (`ReviewInbox.for_customer` / `erase_customer`), their
                               pending FAQ proposals and the approved FAQ alternates holding their words
                               (`bot.review_proposals`)

Erasure goes in an order that survives being cut short and run again: first what is found only
through something deleted later (the statistics' questions, found through the transcripts; the
platform posts, whose links are forgotten only once deleted), then the rest. Afterwards Redis is
asked to rewrite its files (`bot.persistence`), so the data leaves the disk too. The answer says
what was removed, which posts could not be deleted, and whether FAQ alternates went (the caller
reloads the knowledge base then). An erasure does not stop a message of theirs being handled at
that very moment from writing its answer afterwards; erase again once they are gone. Escalation
records and stats texts also expire on their own (`EscalationQueue` retention, `BotStats`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

import redis

from bot.customer_conversations import Conversation, SharedConversations, dump
from bot.customer_stats import CountedList, CustomerStats, counted_texts
from bot.keys import Keys
from bot.learned import LearnedEntries
from bot.persistence import rewrite_files
from bot.posts import PlatformPosts
from bot.protocols import PostRemover
from bot.review import MAX_TEXT, ReviewInbox, mask


def _no_remover(platform: str) -> PostRemover | None:
    return None


class CustomerData:
    def __init__(self, client: redis.Redis, keys: Keys, *,
                 removers: Callable[[str], PostRemover | None] = _no_remover, rewrite: bool = True):
        self.redis = client
        self.keys = keys
        self.removers = removers  # platform -> what deletes the bot's posts there (the channel registry's)
        self.rewrite = rewrite  # ask Redis to rewrite its files after an erasure
        self.shared = SharedConversations(client, keys)
        self.stats = CustomerStats(client, keys)
        self.posts = PlatformPosts(client, keys)
        self.learned = LearnedEntries(client, keys)  # approved FAQ entries whose alternates are their words

    # ------------------------------------------------------------------ finding
    def conversations(self, channel: str, user_id: str) -> list[str]:
        """Conversation keys ("channel:id") the customer is in."""
        return [c.id for c in self.shared.of(channel, user_id)]

    def _escalations(self, channel: str, user_id: str, whole: set[str]) -> list[dict]:
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
                    or record.get("conversation_id") in whole:
                found.append(record)
        return found

    def _review(self) -> ReviewInbox:
        """The review inbox, which keeps customers' texts (masked) with their channel and id."""
        return ReviewInbox(self.redis, self.keys)

    def _rate_keys(self, channel: str, user_id: str) -> list[str]:
        """Their message and escalation rate-limit windows (bot.ratelimit)."""
        return [_text(k) for family in ("rate", "escrate")
                for k in self.redis.scan_iter(match=self.keys.pattern(f"{family}:{channel}:{user_id}"), count=1000)]

    @staticmethod
    def _their_texts(found: list[Conversation], user_id: str, items: list[dict]) -> set[str]:
        """Their words as the review inbox keeps them (masked), to find FAQ alternates older than their owners."""
        said = {mask(str(e["text"]).strip())[:MAX_TEXT] for c in found for e in c.part_of(user_id)
                if e.get("role") == "customer" and e.get("text")}
        return {t for t in said | {i["text"] for i in items} if t}

    # ------------------------------------------------------------------ export
    def export(self, channel: str, user_id: str) -> dict:
        """Everything stored about the customer, as JSON-ready data; of a shared conversation, their part only."""
        found = self.shared.of(channel, user_id)
        whole = [c for c in found if not c.shared_with_others(user_id)]
        conversations = [self._export_whole(c) for c in whole]
        conversations += [self.shared.export_part(c, user_id) for c in found if c not in whole]
        words = self.stats.still_counted(t for c in found for t in counted_texts(c.id, c.part_of(user_id)))
        review = self._review()
        items = review.for_customer(channel, user_id)
        return {
            "channel": channel,
            "user_id": user_id,
            "exported_at": time.time(),
            "conversations": sorted(conversations, key=lambda c: c["conversation_id"]),
            "escalations": self._escalations(channel, user_id, {c.id for c in whole}),
            "review_items": items,
            **review.proposals.for_customer(channel, user_id, self._their_texts(found, user_id, items)),
            "staff_posts": [asdict(link) for link in self.posts.for_customer(channel, user_id)],
            "learned_alternates": self.learned.for_customer(channel, user_id),
            "rate_limit": {key: dump(self.redis, key) for key in self._rate_keys(channel, user_id)},
            "statistics": {
                "counted_in": [{"key": key, "member": member}
                               for key, _, member in self.stats.memberships({c.id for c in whole})],
                **{f"{counted_in}_questions": [{"key": key, "question": q} for key, q in words
                                               if key.endswith(f":{counted_in}")]
                   for counted_in in CountedList},
            },
        }

    def _export_whole(self, conversation: Conversation) -> dict:
        entry: dict = {"conversation_id": conversation.id, "shared": False, "meta": {}, "transcript": [],
                       "other": {}}
        for key in sorted(self.shared.keys_of(conversation.id)):
            part = key.partition("}:")[2]
            if part == "meta":
                entry["meta"] = conversation.meta
            elif part == "history":
                entry["transcript"] = conversation.transcript
            else:
                entry["other"][part] = dump(self.redis, key)
        entry["pending"] = self.redis.zscore(self.keys.pending(), conversation.id) is not None
        return entry

    # ------------------------------------------------------------------ erase
    def erase(self, channel: str, user_id: str) -> dict:
        """Delete every key and scrub every value that names the customer; what was removed, counted."""
        found = self.shared.of(channel, user_id)
        whole = [c for c in found if not c.shared_with_others(user_id)]
        shared = [c for c in found if c not in whole]
        # 1. What is found only through the transcripts, before they go: the statistics' copies of their words.
        words = [t for c in found for t in counted_texts(c.id, c.part_of(user_id))]
        unanswered = self.stats.scrub(t for t in words if t.counted_in == CountedList.UNANSWERED)
        asked = self.stats.scrub(t for t in words if t.counted_in == CountedList.ASKED)
        memberships = self.stats.memberships({c.id for c in whole})
        self.stats.remove_memberships(memberships)
        # 2. Their words on staff platforms; a post not deleted keeps its link, for the next erasure.
        posts = self.posts.delete_for_customer(channel, user_id, self.removers)
        # 3. The review inbox: items, proposals, approved FAQ alternates (found by owner, or by their words).
        review = self._review()
        labels = review.proposals.erase_customer(
            channel, user_id, self._their_texts(found, user_id, review.for_customer(channel, user_id)))
        review_removed = review.erase_customer(channel, user_id)
        # 4. Conversations, escalations, rate-limit windows.
        escalations = self._escalations(channel, user_id, {c.id for c in whole})
        events_removed = keys_deleted = 0
        for conversation in shared:
            removed, deleted = self.shared.erase_part(conversation, user_id)
            events_removed, keys_deleted = events_removed + removed, keys_deleted + deleted
        rate_keys = self._rate_keys(channel, user_id)
        keys_deleted += self._delete(whole, escalations, shared, rate_keys)
        return {
            "channel": channel,
            "user_id": user_id,
            "conversations": [c.id for c in whole],
            "shared_conversations": [c.id for c in shared],
            "shared_events_removed": events_removed,
            "keys_deleted": keys_deleted,
            "escalations": sorted(r["id"] for r in escalations),
            "rate_limit_keys": len(rate_keys),
            "statistics_entries": len(memberships),
            "unanswered_questions": unanswered,
            "asked_questions": asked,
            "review_items": review_removed,
            "faq_proposals": labels.proposals,
            "faq_alternates": labels.alternates,
            "learned_alternates": self.learned.erase_customer(channel, user_id),
            **posts.report(),
            **(rewrite_files(self.redis) if self.rewrite else {}),
        }

    def _delete(self, whole: list[Conversation], escalations: list[dict], shared: list[Conversation],
                rate_keys: list[str]) -> int:
        """Delete the whole conversations, the escalation records and the rate-limit keys; how many keys."""
        deleted = list(rate_keys)
        pipe = self.redis.pipeline(transaction=False)  # one command per key: keys of many slots on a cluster
        for conversation in whole:
            for key in self.shared.keys_of(conversation.id):
                deleted.append(key)
                pipe.delete(key)
            pipe.zrem(self.keys.pending(), conversation.id)
        for key in rate_keys:
            pipe.delete(key)
        erased = {record["id"] for record in escalations}
        for record in escalations:
            pipe.delete(self.keys.esc(record["id"]))
            pipe.zrem(self.keys.esc("all"), record["id"])
            pipe.zrem(self.keys.esc("open"), record["id"])
            for status in ("open", "claimed", "resolved", "expired"):  # the console's status index (bot.escalations)
                pipe.zrem(self.keys.escalation_index(status), record["id"])
            for field, ref in record.items():
                if field.startswith("link:"):
                    pipe.delete(self.keys.esc("link", field.partition(":")[2], ref))
        for conversation in shared:  # the others' conversation was waiting on their escalation: back to the bot
            if conversation.meta.get("escalation_id") in erased:
                meta = self.keys.conv(conversation.id, "meta")
                pipe.hset(meta, "status", "bot")
                pipe.hdel(meta, "escalation_id", "agent")
        pipe.execute()
        return len(deleted)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
