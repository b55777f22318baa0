"""bench.scale's memory and cold-start parts: `frontdesk serve` on the demo and on a 1,000-article help center.

memory: each knowledge base with 1 and 2 uvicorn workers, on a home whose embedding cache is warm (a server is
started on it once first if it is not). RSS, PSS, USS and shared memory of every process of the server
(bench.scale.servers.snapshot) once /readyz has answered 200 (10 times in a row per worker, so every worker is
up) and again after a warm-up of 50 `POST /chat` messages (10 a second, a connection each, so every worker gets
some). Then a fresh probe process loads a worker's parts one by one (bench.scale.steps) to say what the memory
is made of.

coldstart: seconds from spawning `frontdesk serve` (one worker) to its first `/readyz` 200, polled every
0.1 s: cold on an emptied FRONTDESK_HOME (no embedding cache, no Redis data), then warm, a second start on the
same home. The operating system's file cache is not emptied (that needs root): "cold" is Frontdesk's caches.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench._setup import ROOT, WORK
from bench.load import loadgen
from bench.scale import helpcenter, servers
from bench.scale.procmem import load_average, rollup

DEMO_KB = ROOT / "knowledge" / "demo"
READY_TIMEOUT = 3600.0  # a cold start of the help center embeds ~36k texts on a busy 2-core machine
WARMUP_MESSAGES, WARMUP_RATE = 50, 10.0


def knowledge_bases() -> dict[str, Path]:
    folder, _ = helpcenter.build()
    return {"demo": DEMO_KB, "helpcenter": folder}


def ensure_warm(name: str, kb: Path, model: Path) -> float | None:
    """Start a server once on the knowledge base's home if its embedding cache is missing; seconds it took."""
    home = servers.home(name)
    if (home / "kb-cache" / "vectors.npy").is_file():
        return None
    process, url, spawned = servers.start(f"prepare-{name}", kb, model, home, 1)
    try:
        return servers.wait_ready(url, process, READY_TIMEOUT) - spawned
    finally:
        servers.stop(process, home)


def warm_up(url: str) -> dict:
    """50 `POST /chat` messages, 10 a second, each on a connection of its own: uvicorn's workers share one listening
    socket, so new connections spread over them, where bench.load's kept-alive connections all reach one worker."""
    import httpx

    from bench.load.run import CHAT_TOKEN, outcome, questions

    texts, tag, statuses = questions(), f"warm{time.time_ns()}", {}
    started = time.perf_counter()
    for i in range(WARMUP_MESSAGES):
        time.sleep(max(0.0, started + i / WARMUP_RATE - time.perf_counter()))
        body = {"sender": f"{tag}-{i}", "message": texts[i % len(texts)], "message_id": f"{tag}-{i}"}
        try:
            response = httpx.post(f"{url}/chat", json=body, timeout=60,
                                  headers={"Authorization": f"Bearer {CHAT_TOKEN}", "Connection": "close"})
            key = outcome(response.json()) if response.status_code == 200 else str(response.status_code)
        except httpx.HTTPError as exc:
            key = type(exc).__name__
        statuses[key] = statuses.get(key, 0) + 1
    return {"sent": WARMUP_MESSAGES, "statuses": statuses}


def measure(name: str, kb: Path, model: Path, workers: int) -> dict:
    home = servers.home(name)
    process, url, spawned = servers.start(f"memory-{name}-{workers}w", kb, model, home, workers)
    try:
        ready = servers.wait_ready(url, process, READY_TIMEOUT, consecutive=10 * workers) - spawned
        time.sleep(3)  # start-up threads (readiness monitor, gap finder) settle
        at_ready = servers.snapshot(process.pid, home, workers)
        contents = servers.contents(url)
        warm = warm_up(url)
        time.sleep(2)
        after = servers.snapshot(process.pid, home, workers)
    finally:
        servers.stop(process, home)
    out = {"kb": name, "workers": workers, "ready_s": ready, "contents": contents, "warmup": warm,
           "ready": at_ready, "after_warmup": after, "load_average": load_average()}
    print(json.dumps({k: v for k, v in out.items() if k not in ("ready", "after_warmup")}), flush=True)
    return out


def probe(name: str, kb: Path, model: Path) -> dict:
    """A worker's parts loaded one at a time in a fresh process (bench.scale.steps)."""
    done = subprocess.run([sys.executable, "-m", "bench.scale.steps", str(model), str(kb), str(servers.home(name))],
                          cwd=ROOT, capture_output=True, text=True, timeout=READY_TIMEOUT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def redis_figure() -> dict | None:
    """bench.memory's Redis bytes per conversation, if it has been run (bench/results/memory.json)."""
    path = WORK / "memory.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {k: data[k] for k in ("conversations", "messages", "used_memory_delta_per_conversation",
                                 "conversation_key_bytes_per_conversation") if k in data}


def run_memory(model: Path) -> dict:
    kbs = knowledge_bases()
    out: dict = {"model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
                 "helpcenter_manifest": helpcenter.build()[1],
                 "rows": {name: helpcenter.index_rows(kb) for name, kb in kbs.items()}, "runs": [], "probes": {}}
    for name, kb in kbs.items():
        prepared = ensure_warm(name, kb, model)
        if prepared is not None:
            out.setdefault("prepared_s", {})[name] = prepared
        for workers in (1, 2):
            out["runs"].append(measure(name, kb, model, workers))
        out["probes"][name] = probe(name, kb, model)
    out["redis"] = redis_figure()
    return out


# ---------------------------------------------------------------- cold start
def timed_start(name: str, kb: Path, model: Path) -> dict:
    home = servers.home(name)
    process, url, spawned = servers.start(f"coldstart-{name}", kb, model, home, 1)
    try:
        seconds = servers.wait_ready(url, process, READY_TIMEOUT) - spawned
        memory = rollup(process.pid)
        # CPU seconds spent getting ready: unlike wall time, barely moved by other people's load on a shared machine.
        cpu = loadgen.server_cpu_seconds(process.pid)
    finally:
        servers.stop(process, home)
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu, 1), "rss_mb": round(memory["rss_mb"], 1),
            "peak_rss_mb": round(memory["peak_rss_mb"], 1), "load_average": load_average()}


def run_coldstart(model: Path, reps: dict[str, int], progress=None) -> dict:
    """`reps` cold+warm pairs per knowledge base (0: not measured); `progress(results so far)` after each pair, so
    a run stopped midway (a 20-minute cold start on a shared machine) keeps what it measured."""
    from bench.report import part_stamp

    out: dict = {}
    for name, kb in knowledge_bases().items():
        starts: dict[str, list] = {"cold": [], "warm": []}
        for _ in range(reps.get(name, 1)):
            shutil.rmtree(servers.home(name), ignore_errors=True)  # cold: no embedding cache, no Redis data
            starts["cold"].append(timed_start(name, kb, model))
            starts["warm"].append(timed_start(name, kb, model))
            print(name, json.dumps({k: v[-1] for k, v in starts.items()}), flush=True)
            out[name] = {kind: {"starts": runs, "median_s": statistics.median(r["seconds"] for r in runs),
                                "min_s": min(r["seconds"] for r in runs), "max_s": max(r["seconds"] for r in runs)}
                         for kind, runs in starts.items()} | {"run": part_stamp()}
            if progress is not None:
                progress(out)
    return out
