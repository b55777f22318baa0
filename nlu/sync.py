"""Keeping every server process on the same model version through Redis (deploy and restore, live).

The same mechanism as the knowledge base's (`knowledge.sync`): the process that handles a
deploy or restore first loads and probes the model itself, swaps it in, then records the
*desired* state in Redis with a sequence number and publishes an event. Every process
listens; on an event, or on its heartbeat when it missed one (pub/sub is fire-and-forget),
it compares the desired sequence with the last one it applied and catches up: it loads the
model beside the one it serves and swaps it in atomically (`InferenceEngine.swap`), so no
request fails or waits for the load. Each process records the version it serves under a key
with a TTL (and its id in a sorted set for listing), so a stopped worker drops out by itself.

A deploy survives restarts: a worker that starts while a deploy is recorded catches up to
it at once (deploy the configured `FRONTDESK_MODEL_DIR` to go back to it).

Key names come from the caller (`bot.keys.Keys.model`): `nlu/` never imports `bot/`.
Model paths must name the same files on every worker (a shared or identically provisioned
directory): each worker loads the model itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from common.fleet import Follower
from nlu.artifacts import ModelLoadError

log = logging.getLogger(__name__)

KeyFn = Callable[..., str]  # key("desired"), key("worker", ID), ...
LOCK_TTL_MS = 120_000  # the fleet's deploy lock outlives a worker that died holding it by at most this
LOCK_WAIT_S = 60.0  # how long a deploy or restore waits for another worker's to finish
# KEYS: lock. ARGV: token. Deletes the lock only while it is still ours (it may have expired and been taken).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class DeployBusy(RuntimeError):
    """Another worker's deploy or restore held the fleet's lock for longer than this one would wait."""


class ModelSync(Follower):
    """One per process: deploys and restores for the fleet, and this worker's part in them."""

    name = "model-sync"

    def __init__(self, engine, client: redis.Redis, key: KeyFn, load: Callable[[str], object], *, path: str,
                 worker_id: str | None = None, heartbeat: float = 2.0):
        super().__init__(client, heartbeat)
        self.engine = engine
        self.key = key
        self.load = load  # path -> a probed Predictor carrying its version (nlu.versions.load_checked)
        self.path = str(path)
        self.ttl = max(5, int(heartbeat * 5))  # a worker missing several heartbeats is no longer listed
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.applied_seq = 0
        self.error: str | None = None  # why the last catch-up failed here (the fleet view shows it)
        self.listeners: list[Callable[[str], None]] = []  # called with the new version after each swap
        self._lock = threading.Lock()  # one load-and-swap at a time in this process
        self._release = client.register_script(_RELEASE)
        self._held = threading.local()  # this thread holds the fleet's lock (`exclusive` nests)

    # ------------------------------------------------------------ state
    def desired(self) -> dict | None:
        raw = self.redis.get(self.key("desired"))
        return json.loads(raw) if raw else None

    def serving(self) -> dict:
        return {"path": self.path, "version": self.engine.version}

    def status(self) -> dict:
        """`GET /admin/model`: the version the fleet should serve, the previous one, and every live worker."""
        desired = self.desired()
        current = desired["current"] if desired else self.serving()
        previous = (desired or {}).get("previous")
        return {"version": current["version"], "path": current["path"],
                "previous": previous["version"] if previous else None,
                "previous_path": previous["path"] if previous else None,
                "worker": self.worker_id, "workers": self.workers()}

    def workers(self) -> list[dict]:
        now = time.time()
        self.redis.zremrangebyscore(self.key("workers"), "-inf", now - self.ttl)
        ids = [w.decode() if isinstance(w, bytes) else w for w in self.redis.zrange(self.key("workers"), 0, -1)]
        if not ids:
            return []
        out = []
        for worker, raw in zip(ids, self.redis.mget([self.key("worker", w) for w in ids]), strict=True):
            if raw:  # expired between the two reads: that worker is gone
                out.append({"id": worker, **json.loads(raw)})
        return out

    # ------------------------------------------------------------ the requesting side
    def deploy(self, path: str, predictor=None) -> dict:
        """Serve the model at `path` here, then on every worker; `ModelLoadError` and nothing changes if it fails.

        `predictor`: already loaded and probed (the caller checked it against the serving model).
        """
        path = str(Path(path).resolve())
        with self.exclusive(), self._lock:
            predictor = predictor if predictor is not None else self.load(path)
            desired = self.desired()
            previous = desired["current"] if desired else self.serving()
            self._swap(predictor, path)
            current = self.serving()
            self._announce("deploy", current, previous)
        return current

    def restore(self) -> dict:
        """Serve the previous version again, everywhere (and the one it replaces becomes the previous)."""
        with self.exclusive(), self._lock:
            desired = self.desired()
            if not desired or not desired.get("previous"):
                raise LookupError("no previous model version to restore: nothing was deployed yet")
            previous = desired["previous"]
            predictor = self.load(previous["path"])
            self._swap(predictor, previous["path"])
            self._announce("restore", self.serving(), desired["current"])
            return self.serving()

    @contextmanager
    def exclusive(self, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
        """One deploy or restore at a time across the fleet: a lock in Redis (`key("lock")`, a random token,
        SET NX PX), waited for up to `wait_s` (then `DeployBusy`). Without it two workers deploying at once
        could record the older deploy last, and the fleet would follow it while the other worker kept its own.
        Held already by this thread (a caller that checks a candidate, then deploys it): it simply nests."""
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        while not self.redis.set(self.key("lock"), token, nx=True, px=LOCK_TTL_MS):
            if time.monotonic() > deadline:
                raise DeployBusy(f"another worker's deploy or restore has been running for over {wait_s:.0f} s; "
                                 "nothing changed: try again once it has finished")
            time.sleep(0.1)
        self._held.depth = 1
        try:
            yield
        finally:
            self._held.depth = 0
            with contextlib.suppress(redis.RedisError):  # not released: it expires after LOCK_TTL_MS
                self._release(keys=[self.key("lock")], args=[token])

    def _announce(self, action: str, current: dict, previous: dict) -> None:
        seq = int(self.redis.incr(self.key("seq")))
        desired = {"seq": seq, "action": action, "current": current, "previous": previous}
        self.redis.set(self.key("desired"), json.dumps(desired))
        self.applied_seq = max(self.applied_seq, seq)
        self.redis.publish(self.key("events"), json.dumps({"seq": seq}))
        self.report()

    def _swap(self, predictor, path: str) -> None:
        self.engine.swap(predictor)
        self.path = path
        self.error = None
        log.info("model swapped in", extra={"model_version": predictor.version})
        for listener in self.listeners:
            try:
                listener(predictor.version)
            except Exception:  # a metrics hook must not undo a swap
                log.exception("model swap listener failed")

    # ------------------------------------------------------------ every process
    def report(self) -> None:
        record = {"version": self.engine.version, "path": self.path, "pid": os.getpid(),
                  "host": socket.gethostname(), "at": time.time(), "error": self.error}
        self.redis.set(self.key("worker", self.worker_id), json.dumps(record), ex=self.ttl)
        self.redis.zadd(self.key("workers"), {self.worker_id: record["at"]})

    def catch_up(self) -> None:
        desired = self.desired()
        if not desired or desired["seq"] <= self.applied_seq:
            return
        with self._lock:
            current = desired["current"]
            if current["version"] != self.engine.version:
                try:
                    predictor = self.load(current["path"])
                    if predictor.version != current["version"]:
                        raise ModelLoadError(f"{current['path']} holds version {predictor.version} here, "
                                             f"not {current['version']}")
                    self._swap(predictor, current["path"])
                except ModelLoadError as exc:
                    self.error = str(exc)
                    log.warning("model %s requested by another worker failed to load here: %s",
                                current["version"], exc)
            self.applied_seq = desired["seq"]
        self.report()

    @property
    def events_channel(self) -> str:
        return self.key("events")

    def forget(self) -> None:
        self.redis.delete(self.key("worker", self.worker_id))
        self.redis.zrem(self.key("workers"), self.worker_id)
