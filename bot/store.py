"""Conversation state in Redis: metadata, capped transcript, sentiment trail, expiry after inactivity."""

from __future__ import annotations

import json
import time

import redis

from bot.keys import Keys

STATUSES = ("bot", "escalated", "with_agent", "resolved")


class ConversationStore:
    def __init__(self, client: redis.Redis, keys: Keys, *, history_cap: int = 200, sentiment_cap: int = 20,
                 idle_ttl: int = 7 * 86_400):
        self.redis = client
        self.keys = keys
        self.history_cap = history_cap
        self.sentiment_cap = sentiment_cap
        self.idle_ttl = idle_ttl

    def meta(self, conversation: str) -> dict[str, str]:
        raw = self.redis.hgetall(self.keys.conv(conversation, "meta"))
        return {_text(k): _text(v) for k, v in raw.items()}

    def start(self, conversation: str, channel: str, user_id: str, display_name: str | None) -> dict[str, str]:
        """Create the conversation's metadata if it does not exist yet; return it."""
        key = self.keys.conv(conversation, "meta")
        now = str(time.time())
        fields = {"channel": channel, "user_id": user_id, "status": "bot", "created_at": now, "updated_at": now,
                  "fallbacks": "0"}
        if display_name:
            fields["display_name"] = display_name
        pipe = self.redis.pipeline(transaction=True)
        for field, value in fields.items():
            pipe.hsetnx(key, field, value)
        pipe.execute()
        return self.meta(conversation)

    def update(self, conversation: str, **fields: str | int | float | None) -> None:
        key = self.keys.conv(conversation, "meta")
        values = {k: str(v) for k, v in fields.items() if v is not None}
        cleared = [k for k, v in fields.items() if v is None]
        pipe = self.redis.pipeline(transaction=True)
        if values:
            pipe.hset(key, mapping={**values, "updated_at": str(time.time())})
        if cleared:
            pipe.hdel(key, *cleared)
        pipe.execute()

    def append(self, conversation: str, role: str, text: str, **extra) -> dict:
        """Add an event to the transcript (capped) and refresh the conversation's expiry."""
        event = {"at": time.time(), "role": role, "text": text, **{k: v for k, v in extra.items() if v is not None}}
        key = self.keys.conv(conversation, "history")
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(key, json.dumps(event, ensure_ascii=False))
        pipe.ltrim(key, -self.history_cap, -1)
        for part in self.keys.conversation_parts(conversation):
            pipe.expire(part, self.idle_ttl)
        pipe.execute()
        return event

    def rewind(self, conversation: str, uid: str, look_back: int = 50) -> int:
        """Drop what a crashed first attempt at message `uid` left in the transcript; return how many events.

        Messages of one conversation are handled one at a time, so everything from that
        message's customer event onwards belongs to the attempt that died.
        """
        if not uid:
            return 0
        key = self.keys.conv(conversation, "history")
        tail = self.redis.lrange(key, -look_back, -1)
        for offset, raw in enumerate(tail):
            if json.loads(raw).get("uid") == uid:
                dropped = len(tail) - offset
                self.redis.ltrim(key, 0, -dropped - 1)
                return dropped
        return 0

    def history(self, conversation: str, last: int | None = None) -> list[dict]:
        start = -last if last else 0
        return [json.loads(e) for e in self.redis.lrange(self.keys.conv(conversation, "history"), start, -1)]

    def push_sentiment(self, conversation: str, negative: float) -> list[float]:
        """Record this message's negative-sentiment probability; return the recent trail, oldest first."""
        key = self.keys.conv(conversation, "sentiment")
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(key, f"{negative:.4f}")
        pipe.ltrim(key, -self.sentiment_cap, -1)
        pipe.lrange(key, 0, -1)
        return [float(x) for x in pipe.execute()[-1]]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
