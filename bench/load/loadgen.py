"""The serving benchmark's load generator and server-process helpers (used by bench.serve, bench.load and bench.deploy).

One closed-loop generator for every design measured: N asyncio workers, each with one
request in flight, on one aiohttp session to 127.0.0.1. Requests that complete inside the
measuring window count; a short warm-up before it is not measured. Bounded both in time
(`duration`) and, for the very slow designs, in count (`max_requests`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import numpy as np

# (session, base_url, worker index) -> None; raises on a failed request.
Call = Callable[[aiohttp.ClientSession, str, int], Awaitable[None]]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(pid: int) -> float:
    """CPU time of the server process and its children (uvicorn's workers), threads included."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(cpu_seconds(p) for p in [pid, *map(int, children)])


def summarise(latencies: list[float], errors: int, seconds: float) -> dict:
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {"requests": len(latencies), "errors": errors, "seconds": round(seconds, 2),
            "rps": len(latencies) / seconds if seconds > 0 else 0.0,
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean())}


async def _closed_loop(base_url: str, call: Call, concurrency: int, duration: float, warmup: float,
                       max_requests: int | None, request_timeout: float) -> dict:
    latencies: list[float] = []
    errors = 0
    issued = 0
    started = time.perf_counter()
    window_start = started + warmup
    window_end = window_start + duration

    async def worker(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors, issued
        while time.perf_counter() < window_end and (max_requests is None or issued < max_requests):
            issued += 1
            t = time.perf_counter()
            try:
                await call(session, base_url, index)
                ok = True
            except (TimeoutError, aiohttp.ClientError, AssertionError):
                ok = False
            done = time.perf_counter()
            if t >= window_start and done <= window_end:  # wholly inside the measuring window
                if ok:
                    latencies.append(done - t)
                else:
                    errors += 1

    timeout = aiohttp.ClientTimeout(total=request_timeout)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(worker(i, session) for i in range(concurrency)))
    finished = time.perf_counter()
    # A count-bounded run ends when its last request does, not at the window's end.
    seconds = min(finished, window_end) - window_start
    return summarise(latencies, errors, seconds)


def run_load(base_url: str, call: Call, concurrency: int, duration: float, warmup: float = 2.0,
             max_requests: int | None = None, request_timeout: float = 60.0) -> dict:
    """Closed-loop load for `duration` s after `warmup` s; requests/s and latency percentiles."""
    try:
        import uvloop

        runner = uvloop.run  # a cheaper client loop leaves more of the shared CPU to the server
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    result = runner(_closed_loop(base_url, call, concurrency, duration, warmup, max_requests, request_timeout))
    return {"clients": concurrency, **result}


# ---------------------------------------------------------------- server processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
    """A server in its own process group, so stopping it also stops the workers it forked."""
    log = open(log_path, "wb")  # noqa: SIM115 - the process owns it until stop()
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_http(url: str, process: subprocess.Popen, timeout: float = 300.0, consecutive: int = 1) -> None:
    """Wait until `url` answers 200 `consecutive` times in a row (several workers: each must be ready)."""
    import httpx

    deadline, streak = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            streak = streak + 1 if httpx.get(url, timeout=5).status_code == 200 else 0
        except httpx.HTTPError:
            streak = 0
        if streak >= consecutive:
            return
        time.sleep(0.05 if streak else 0.5)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group we started (uvicorn's supervisor and its workers), then SIGKILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Workers of a killed supervisor may linger for a moment; wait until the group is gone.
    for _ in range(100):
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
