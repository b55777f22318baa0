"""After an erasure: have Redis write its files afresh, so the erased data leaves the disk too.

Deleting keys removes them from memory at once, but not from Redis's files: the append-only file
(AOF) still holds the commands that wrote them until it is rewritten, and an RDB snapshot holds
them until the next snapshot replaces it. `rewrite_files` asks each master (each one on Redis
Cluster) for an AOF rewrite (`BGREWRITEAOF`) when the AOF is on, and for a new snapshot
(`BGSAVE SCHEDULE`) when snapshots are configured, and reports per file what happened:

    started    the rewrite (or snapshot) began; the old file is replaced when it ends
    scheduled  Redis runs it as soon as the save or rewrite already running ends
    busy       one was already running (forked before the erasure) after `BUSY_WAIT_S`: run the erasure again
    off        that file is not in use on this server: nothing of it on disk
    unknown    the server would not say whether snapshots are on (CONFIG is disabled, as on managed services)
    refused    the command is not allowed (renamed, ACL, a managed service): the operator's schedule decides

docs/STAFF_AND_DATA.md says when erased data leaves the disk in each case.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum

import redis

log = logging.getLogger(__name__)

BUSY_WAIT_S = 10.0  # how long to wait for a rewrite someone else started (it may predate the erasure)


class FileRewrite(StrEnum):
    STARTED = "started"
    SCHEDULED = "scheduled"
    BUSY = "busy"
    OFF = "off"
    UNKNOWN = "unknown"
    REFUSED = "refused"


def rewrite_files(client) -> dict[str, str]:
    """`{"aof_rewrite": ..., "rdb_snapshot": ...}` (a `FileRewrite`, or "started on 2 of 3 masters: ...")."""
    nodes = _masters(client)
    aof = [_rewrite_aof(node) for node in nodes]
    rdb = [_snapshot(node) for node in nodes]
    return {"aof_rewrite": _summary(aof), "rdb_snapshot": _summary(rdb)}


def _masters(client) -> list[redis.Redis]:
    """A plain client per master: the one server, or each primary of a cluster."""
    if isinstance(client, redis.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def _rewrite_aof(node: redis.Redis) -> FileRewrite:
    try:
        if int(node.info("persistence").get("aof_enabled", 0)) != 1:
            return FileRewrite.OFF
        if not _when_free(node.bgrewriteaof):  # redis-py answers True either way: INFO says which
            return FileRewrite.BUSY
        scheduled = int(node.info("persistence").get("aof_rewrite_scheduled", 0)) == 1
        return FileRewrite.SCHEDULED if scheduled else FileRewrite.STARTED
    except redis.ResponseError as exc:  # NOPERM, a renamed command: the operator's own schedule decides
        log.warning("AOF rewrite after an erasure refused (%s)", type(exc).__name__)
        return FileRewrite.REFUSED


def _snapshot(node: redis.Redis) -> FileRewrite:
    try:
        rules = node.config_get("save").get("save", "")
    except redis.ResponseError:
        return FileRewrite.UNKNOWN
    if not str(rules).strip():
        return FileRewrite.OFF
    try:
        # With the AOF rewrite just started, Redis takes the snapshot once it ends (SCHEDULE).
        busy = int(node.info("persistence").get("aof_rewrite_in_progress", 0)) == 1
        if not _when_free(lambda: node.bgsave(schedule=True)):
            return FileRewrite.BUSY
    except redis.ResponseError as exc:
        log.warning("snapshot after an erasure refused (%s)", type(exc).__name__)
        return FileRewrite.REFUSED
    return FileRewrite.SCHEDULED if busy else FileRewrite.STARTED


def _when_free(command) -> bool:
    """Run `command`, again while Redis answers that one is "already in progress"; False after `BUSY_WAIT_S`.

    That rewrite or snapshot forked before the erasure, so its file may still hold what was erased: wait
    for it to end, then start one that does not.
    """
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            command()
            return True
        except redis.ResponseError as exc:
            if "already in progress" not in str(exc):
                raise
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def _summary(results: list[FileRewrite]) -> str:
    if len(set(results)) == 1:
        return str(results[0])
    counts = {str(r): results.count(r) for r in results}
    return "; ".join(f"{state} on {n} of {len(results)} masters" for state, n in sorted(counts.items()))
