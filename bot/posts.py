"""The bot's posts on staff platforms that hold a customer's words, remembered so an erasure can delete them.

An escalation post in Slack's support channel shows the conversation's transcript, and a customer's
message while staff hold the conversation is relayed into its thread: both copy customers' words
out of Redis onto the platform. The adapter that posts records each post's `(channel, ts)` here,
against every customer whose words it holds (`{p:posts:CHANNEL:USER}`, see `bot.keys`). Erasure
(`bot.customers`) asks that platform's `PostRemover` (`bot.protocols`) to delete each post, and
forgets only the posts it deleted: one the platform would not delete stays listed, so a later
erasure tries it again, and the erasure's answer says which ones and why.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import redis

from bot.keys import Keys
from bot.protocols import PostRemover

log = logging.getLogger(__name__)


class PostNotDeleted(RuntimeError):
    """The platform refused to delete a post, or could not be reached; `reason` is loggable (no content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PostLink:
    """Where one post is: the platform, its channel (or chat) there and the post's id in it."""

    platform: str
    channel: str
    ts: str

    @property
    def field(self) -> str:
        return f"{self.platform}:{self.channel}:{self.ts}"


@dataclass(frozen=True)
class PostDeletion:
    """What an erasure did with one customer's posts: how many deleted, per platform, and which not (and why)."""

    deleted: dict[str, int]
    not_deleted: list[dict]

    def report(self, platforms: Iterable[str] = ("slack",)) -> dict:
        """`{"slack_posts_deleted": n, "slack_posts_not_deleted": [{"channel", "ts", "error"}]}` per platform."""
        out: dict = {}
        for platform in sorted({*platforms, *self.deleted, *(p["platform"] for p in self.not_deleted)}):
            out[f"{platform}_posts_deleted"] = self.deleted.get(platform, 0)
            out[f"{platform}_posts_not_deleted"] = [{k: v for k, v in p.items() if k != "platform"}
                                                    for p in self.not_deleted if p["platform"] == platform]
        return out


class PlatformPosts:
    def __init__(self, client: redis.Redis, keys: Keys):
        self.redis = client
        self.keys = keys

    def record(self, customers: Iterable[tuple[str, str]], link: PostLink) -> None:
        """Remember that the post at `link` holds the words of each `(channel, user_id)` in `customers`.

        Raises on a Redis error: the adapter logs it (the post itself was made; only its erasure link is lost).
        """
        value = json.dumps({**asdict(link), "at": round(time.time(), 3)})
        pipe = self.redis.pipeline(transaction=False)  # one key per customer: several slots on a cluster
        for channel, user_id in set(customers):
            if user_id:
                pipe.hset(self.keys.posts(channel, user_id), link.field, value)
        pipe.execute()

    def for_customer(self, channel: str, user_id: str) -> list[PostLink]:
        raw = self.redis.hgetall(self.keys.posts(channel, user_id))
        links = []
        for value in raw.values():
            data = json.loads(value)
            links.append(PostLink(data["platform"], data["channel"], data["ts"]))
        return sorted(links, key=lambda link: link.field)

    def delete_for_customer(self, channel: str, user_id: str,
                            remover_for: Callable[[str], PostRemover | None]) -> PostDeletion:
        """Ask each post's platform to delete it; forget the ones deleted, keep the others listed."""
        deleted: dict[str, int] = {}
        not_deleted: list[dict] = []
        key = self.keys.posts(channel, user_id)
        for link in self.for_customer(channel, user_id):
            remover = remover_for(link.platform)
            try:
                if remover is None:
                    raise PostNotDeleted(f"{link.platform} is not running on this server")
                remover.delete_post(link.channel, link.ts)
            except PostNotDeleted as exc:
                log.warning("a %s post was not deleted (%s); kept for the next erasure", link.platform, exc.reason)
                not_deleted.append({"platform": link.platform, "channel": link.channel, "ts": link.ts,
                                    "error": exc.reason})
                continue
            self.redis.hdel(key, link.field)  # one at a time: a crash forgets nothing not yet deleted
            deleted[link.platform] = deleted.get(link.platform, 0) + 1
        return PostDeletion(deleted, not_deleted)
