"""A shadow model: a candidate that classifies the live messages beside the serving model, and never answers.

`ShadowTap` is the classifier the bot holds: the serving engine, through which every customer
message passes once; with a shadow running it also hands the message, what the serving model said
and how long that took to the shadow, without waiting (a full queue drops it, counted as
`skipped`). The `Shadow` works on its own thread, off the reply path: it classifies what it was
handed in batches, decides each message twice with the bot's own rule (`Bot.decisions_for`, a
fresh conversation: as a replay does) and counts intent agreement, decisions that would change
(`bot.replay.Change`) and the time each model took. It keeps within a CPU budget
(FRONTDESK_SHADOW_BUDGET, the share of its thread's time spent working): after each batch it rests
in proportion, and what arrives meanwhile waits in the queue or is skipped.

`ShadowSync` makes it fleet-wide, as `nlu.sync.ModelSync` does deploys: the worker that starts a
shadow loads and probes it first, then records it in Redis (`model:shadow`) and publishes; every
worker follows (event or heartbeat), loads it beside its serving model, and reports its figures
under a key with a TTL; `status` adds them up. Stopping deletes the record and every worker drops
its shadow. Routes: adapters/http/model_admin.py (`/admin/model/shadow`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from bot.replay import Change, change
from common.fleet import Follower
from common.supervise import Supervised

log = logging.getLogger("frontdesk")

QUEUE = 512  # messages waiting for the shadow; more are skipped (it is a sample, never a backlog)
BATCH = 8  # messages the candidate classifies at once: a short burst of CPU, never a long one beside the replies
TIMINGS = 2048  # the most recent per-message times kept for each model's percentiles


class ShadowTap:
    """The bot's classifier: the serving engine, each message also offered to the shadow when one runs."""

    def __init__(self, engine):
        self.engine = engine
        self.shadow: Shadow | None = None

    def predict_one(self, text: str):
        started = time.perf_counter()
        result = self.engine.predict_one(text)
        shadow = self.shadow  # read once: a stop between the check and the call must not fail the message
        if shadow is not None:
            shadow.offer(text, result, (time.perf_counter() - started) * 1000)
        return result


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None}
    ordered = sorted(values)
    return {"p50": round(ordered[len(ordered) // 2], 3), "p95": round(ordered[min(len(ordered) - 1,
                                                                                   int(len(ordered) * 0.95))], 3)}


@dataclass
class ShadowFigures:
    """What one worker's shadow has seen; `to_dict` is what it reports to the fleet."""

    compared: int = 0
    agreed: int = 0  # same intent from both models
    changed: int = 0  # messages whose decision would change
    changes: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # offered while the queue was full: not compared
    failed: int = 0  # batches the candidate could not classify
    serving_ms: list[float] = field(default_factory=list)
    candidate_ms: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"compared": self.compared, "agreed": self.agreed, "changed": self.changed,
                "changes": {c.value: self.changes[c] for c in Change}, "skipped": self.skipped, "failed": self.failed,
                "latency_ms": {"serving": _percentiles(self.serving_ms), "candidate": _percentiles(self.candidate_ms)}}


Decide = Callable[[list[str], list], list]  # (texts, results) -> the bot's decisions (`Bot.decisions_for`)


class Shadow:
    """One candidate classifying live messages on its own thread (see the module docstring)."""

    def __init__(self, candidate, decide: Decide, *, path: str, seq: int, budget: float):
        self.candidate = candidate  # a loaded, probed Predictor (`predict(texts)`), never the serving engine
        self.decide = decide
        self.path, self.seq, self.version = path, seq, candidate.version
        self.budget = budget
        self.figures = ShadowFigures()
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE)
        self._mu = threading.Lock()
        self._worker = Supervised("model-shadow", self._run)

    def offer(self, text: str, result, serving_ms: float) -> None:
        try:
            self._queue.put_nowait((text, result, serving_ms))
        except queue.Full:
            with self._mu:
                self.figures.skipped += 1

    def start(self) -> Shadow:
        self._worker.start()
        return self

    def stop(self) -> None:
        self._worker.stop()

    def report(self) -> dict:
        with self._mu:
            return self.figures.to_dict()

    def _run(self, worker: Supervised) -> None:
        while not worker.stopping:
            batch = self._take()
            worker.beat()
            if not batch:
                continue
            started = time.perf_counter()
            self._compare(batch)
            busy = time.perf_counter() - started
            # The budget: working `budget` of the time at most; the rest of the CPU is the customers'.
            rest = busy * (1 - self.budget) / self.budget
            if rest and self._pause(worker, rest):
                return

    def _take(self) -> list:
        try:
            batch = [self._queue.get(timeout=0.5)]
        except queue.Empty:
            return []
        while len(batch) < BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    @staticmethod
    def _pause(worker: Supervised, seconds: float) -> bool:
        """Rest `seconds` (beating, so a long rest is not taken for a hang); True when asked to stop meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if worker.stopping:
                return True
            time.sleep(min(left, 0.5))
            worker.beat()
        return worker.stopping

    def _compare(self, batch: list) -> None:
        texts = [text for text, _, _ in batch]
        serving = [result for _, result, _ in batch]
        started = time.perf_counter()
        try:
            candidate = self.candidate.predict(texts)
        except Exception:  # a candidate that fails must never touch the customers' path: counted, and logged
            log.exception("shadow model %s failed to classify a batch", self.version)
            with self._mu:
                self.figures.failed += 1
            return
        per_message = (time.perf_counter() - started) * 1000 / len(texts)
        # One call for both versions' decisions: the knowledge base embeds each text once, and not at all when the
        # reply it was classified for has just embedded it (KnowledgeBase.answers keeps the latest ones).
        decided = self.decide(texts + texts, serving + candidate)
        before, after = decided[:len(texts)], decided[len(texts):]
        with self._mu:
            f = self.figures
            for old, new, old_decision, new_decision in zip(serving, candidate, before, after, strict=True):
                f.compared += 1
                f.agreed += old.intent == new.intent
                kind = change(old_decision, new_decision)
                if kind is not None:
                    f.changed += 1
                    f.changes[kind] += 1
            f.serving_ms = (f.serving_ms + [ms for _, _, ms in batch])[-TIMINGS:]
            f.candidate_ms = (f.candidate_ms + [per_message] * len(texts))[-TIMINGS:]


class ShadowRefused(RuntimeError):
    """No shadow to promote or stop."""


KeyFn = Callable[..., str]


class ShadowSync(Follower):
    """One per process: starts and stops the fleet's shadow, and runs this worker's (module docstring)."""

    name = "shadow-sync"

    def __init__(self, tap: ShadowTap, client: redis.Redis, key: KeyFn, load: Callable[[str], object],
                 decide: Decide, *, budget: float, worker_id: str | None = None, heartbeat: float = 2.0):
        super().__init__(client, heartbeat)
        self.tap, self.key, self.load, self.decide, self.budget = tap, key, load, decide, budget
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.ttl = max(5, int(heartbeat * 5))
        self.error: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the fleet's record
    def desired(self) -> dict | None:
        raw = self.redis.get(self.key("shadow"))
        return json.loads(raw) if raw else None

    def begin(self, path: str, candidate) -> dict:
        """Run `candidate` (loaded from `path` and probed by the caller) as the fleet's shadow, here at once."""
        with self._lock:
            seq = int(self.redis.incr(self.key("shadow-seq")))
            record = {"path": path, "version": candidate.version, "seq": seq, "since": time.time()}
            self._install(Shadow(candidate, self.decide, path=path, seq=seq, budget=self.budget).start())
            self.redis.set(self.key("shadow"), json.dumps(record))
            self.redis.publish(self.events_channel, json.dumps({"seq": seq}))
        self.report()
        return record

    def end(self) -> dict:
        """Stop the fleet's shadow (`ShadowRefused` when none runs); what it had found, for the answer."""
        record = self.desired()
        if record is None:
            raise ShadowRefused("no shadow model is running")
        found = self.status()
        with self._lock:
            self.redis.delete(self.key("shadow"))
            self.redis.publish(self.events_channel, json.dumps({"seq": 0}))
            self._install(None)
        self.report()
        return {**found, "active": False}  # what it had found, now that it no longer runs

    def status(self) -> dict:
        """`GET /admin/model/shadow`: the shadow, and the figures of every worker running it, added up."""
        record = self.desired()
        if record is None:
            return {"active": False}
        now = time.time()
        self.redis.zremrangebyscore(self.key("shadow-workers"), "-inf", now - self.ttl)
        ids = [w.decode() if isinstance(w, bytes) else w for w in self.redis.zrange(self.key("shadow-workers"), 0, -1)]
        reports = [json.loads(raw) for raw in (self.redis.mget([self.key("shadow-worker", w) for w in ids]) if ids
                                               else []) if raw]
        running = [r for r in reports if r.get("seq") == record["seq"]]
        total = Counter()
        changes: Counter[str] = Counter()
        for r in running:
            total.update({k: r["figures"][k] for k in ("compared", "agreed", "changed", "skipped", "failed")})
            changes.update(r["figures"]["changes"])
        return {"active": True, **record, "compared": total["compared"],
                "agreement": round(total["agreed"] / total["compared"], 4) if total["compared"] else None,
                "decisions_changed": total["changed"], "changes": {c.value: changes[c] for c in Change},
                "skipped": total["skipped"], "failed": total["failed"],
                "latency_ms": {r["worker"]: r["figures"]["latency_ms"] for r in running},
                "workers": [{"id": r["worker"], "running": r.get("seq") == record["seq"], "error": r.get("error")}
                            for r in reports]}

    # ------------------------------------------------------------ every process
    def catch_up(self) -> None:
        # Read and acted on under the lock: a `begin` or `end` in this process between the read and the swap
        # would otherwise be undone by a record read before it.
        with self._lock:
            record = self.desired()
            current = self.tap.shadow
            if record is None:
                if current is not None:
                    self._install(None)
                return
            if current is not None and current.seq == record["seq"]:
                return
            if self.error and self.error.startswith(f"{record['seq']}:"):
                return  # this version failed to load here already: reported, not retried on every heartbeat
            try:
                candidate = self.load(record["path"])
            except Exception as exc:  # ModelLoadError and whatever else a loader raises: reported, never fatal
                self.error = f"{record['seq']}: {exc}"
                log.warning("shadow model %s failed to load here: %s", record["version"], exc)
                self._install(None)
                return
            self._install(Shadow(candidate, self.decide, path=record["path"], seq=record["seq"],
                                 budget=self.budget).start())

    def _install(self, shadow: Shadow | None) -> None:
        """Swap this worker's shadow (the caller holds `_lock`): the tap sees the new one before the old stops."""
        old, self.tap.shadow = self.tap.shadow, shadow
        if shadow is not None:
            self.error = None
        if old is not None:
            old.stop()

    def report(self) -> None:
        shadow = self.tap.shadow
        record = {"worker": self.worker_id, "seq": shadow.seq if shadow else None,
                  "version": shadow.version if shadow else None, "figures": shadow.report() if shadow else None,
                  "error": self.error.partition(": ")[2] if self.error else None, "at": time.time()}
        if shadow is None and self.error is None:
            with contextlib.suppress(redis.RedisError):
                self.forget()
            return
        self.redis.set(self.key("shadow-worker", self.worker_id), json.dumps(record), ex=self.ttl)
        self.redis.zadd(self.key("shadow-workers"), {self.worker_id: record["at"]})

    @property
    def events_channel(self) -> str:
        return self.key("shadow-events")

    def forget(self) -> None:
        self.redis.delete(self.key("shadow-worker", self.worker_id))
        self.redis.zrem(self.key("shadow-workers"), self.worker_id)

    def stop(self) -> None:
        super().stop()
        with self._lock:
            self._install(None)
