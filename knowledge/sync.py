"""Keeping every server process on the same knowledge-base version through Redis.

The process that handles a reload (or restore) request records the *desired* state in
Redis with a sequence number and publishes an event. Every process listens; on an event,
or on its periodic heartbeat if it missed one (pub/sub is fire-and-forget), it compares
the desired sequence with the last one it applied and catches up. Each process also
reports the version it serves, so an admin can see the whole fleet switch.

Keys (all under the configured prefix, with one Redis Cluster hash tag; `bot.keys` lists the rest):
    {prefix:kb}:desired   JSON {"seq", "action", "hash"}
    {prefix:kb}:seq       counter behind "seq"
    {prefix:kb}:workers   hash: worker id -> JSON {"version", "hash", "pid", "host", "at"}
    {prefix:kb}:events    pub/sub channel (on a cluster, redis-py's cluster pub/sub; PUBLISH reaches every node)
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time

import redis

from common.fleet import Follower
from knowledge.service import KnowledgeBase

log = logging.getLogger(__name__)
STALE_AFTER = 30.0  # seconds without a heartbeat before a worker is no longer listed
# The action of a reload after a customer's erasure: every process also drops the version it could restore.
ERASE = "erase"


def sync_key(prefix: str, part: str) -> str:
    """A knowledge-base sync key: `{prefix:kb}:part` (`knowledge/` keeps its own keys; it never imports `bot/`)."""
    return f"{{{prefix}:kb}}:{part}"


class ReloadSync(Follower):
    """One per process: announces this process's reloads and follows everyone else's."""

    name = "kb-sync"

    def __init__(self, kb: KnowledgeBase, client: redis.Redis, prefix: str = "frontdesk",
                 worker_id: str | None = None, heartbeat: float = 2.0):
        super().__init__(client, heartbeat)
        self.kb = kb
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.desired_key = sync_key(prefix, "desired")
        self.seq_key = sync_key(prefix, "seq")
        self.workers_key = sync_key(prefix, "workers")
        self.channel = sync_key(prefix, "events")
        self.applied_seq = 0

    # ------------------------------------------------------------ the requesting side
    def announce(self, action: str) -> None:
        """Tell every process to converge on this process's current version."""
        desired = {"action": action, "hash": self.kb.index.version.content_hash}
        seq = int(self.redis.incr(self.seq_key))
        desired["seq"] = seq
        self.redis.set(self.desired_key, json.dumps(desired))
        self.applied_seq = max(self.applied_seq, seq)
        self.redis.publish(self.channel, json.dumps(desired))
        self.report()

    # ------------------------------------------------------------ every process
    def report(self) -> None:
        if not self.kb.ready:
            return
        version = self.kb.index.version
        self.redis.hset(self.workers_key, self.worker_id, json.dumps({
            "version": version.short, "hash": version.content_hash, "entries": version.entries,
            "pid": os.getpid(), "host": socket.gethostname(), "at": time.time()}))

    def workers(self) -> dict[str, dict]:
        now = time.time()
        out = {}
        for worker, raw in self.redis.hgetall(self.workers_key).items():
            info = json.loads(raw)
            if now - info.get("at", 0) <= STALE_AFTER:
                out[worker.decode() if isinstance(worker, bytes) else worker] = info
        return out

    def catch_up(self) -> None:
        raw = self.redis.get(self.desired_key)
        if not raw:
            return
        desired = json.loads(raw)
        if desired["seq"] <= self.applied_seq:
            return
        current = self.kb.index.version.content_hash if self.kb.ready else None
        erasing = desired["action"] == ERASE
        if desired["hash"] != current:
            status = self.kb.status()
            if desired["action"] == "restore" and (status["previous"] or {}).get("content_hash") == desired["hash"]:
                self.kb.restore_previous()
            else:
                result = self.kb.reload(forget_previous=erasing)
                if not result.ok:
                    log.warning("reload requested by another worker failed here: %d problem(s)", len(result.errors))
        elif erasing:  # already serving it (reloaded for another reason): the version before still goes
            self.kb.forget_previous()
        self.applied_seq = desired["seq"]
        self.report()

    @property
    def events_channel(self) -> str:
        return self.channel

    def forget(self) -> None:
        self.redis.hdel(self.workers_key, self.worker_id)
