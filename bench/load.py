"""Steady-rate load test of `POST /chat` with Redis: zero errors, p99, and flat memory (issue 7).

    python bench/load.py                     # 50 messages/s for 60 s, one worker (the issue's run)
    python bench/load.py --rate 20 --seconds 10 --no-report   # a quick check

Open loop: a message leaves every 1/rate seconds whether or not earlier ones were
answered, as real customers do, so a slow server shows up as latency and errors rather
than as a politely lower request rate. Only ever targets 127.0.0.1; bounded in count
(rate x seconds) and time (a per-request timeout). The server is `frontdesk serve` with
the demo model and FAQ on an embedded Redis; its resident memory is sampled throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import free_port, start, stop, summarise, wait_http
from bench.report import ROOT, run_stamp, table, write_section

RESULTS = ROOT / "docs" / "benchmarks" / "load.json"


def questions() -> list[str]:
    entries = yaml.safe_load((ROOT / "knowledge" / "demo" / "faq.yaml").read_text(encoding="utf-8"))
    entries = entries.get("entries", entries) if isinstance(entries, dict) else entries
    texts = [e["question"] for e in entries] + [a for e in entries for a in e.get("alternates", [])]
    return [*texts, "hello", "thanks!", "where is my order LH-48213?", "this is useless", "can I talk to a human"]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), in MB."""
    total = 0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


async def open_loop(url: str, rate: float, seconds: float, customers: int, timeout: float, pid: int) -> dict:
    texts = questions()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    memory: list[tuple[float, float]] = []
    total = int(rate * seconds)
    started = time.perf_counter()

    async def one(i: int, session: aiohttp.ClientSession) -> None:
        body = {"sender": f"load-{i % customers}", "message": texts[i % len(texts)], "message_id": f"load-{i}"}
        t = time.perf_counter()
        try:
            async with session.post(f"{url}/chat", json=body) as response:
                payload = await response.json()
                key = str(response.status) if response.status != 200 or payload.get("replies") is not None \
                    else "200-malformed"
        except (TimeoutError, aiohttp.ClientError) as exc:
            key = type(exc).__name__
        statuses[key] = statuses.get(key, 0) + 1
        if key == "200":
            latencies.append(time.perf_counter() - t)

    async def sample_memory() -> None:
        while True:
            memory.append((round(time.perf_counter() - started, 1), round(rss_mb(pid), 1)))
            await asyncio.sleep(5)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), connector=connector) as session:
        sampler = asyncio.create_task(sample_memory())
        tasks = []
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, session)))
        await asyncio.gather(*tasks)
        sampler.cancel()
        memory.append((round(time.perf_counter() - started, 1), round(rss_mb(pid), 1)))
    elapsed = time.perf_counter() - started
    errors = sum(n for k, n in statuses.items() if k != "200")
    return {**summarise(latencies, errors, elapsed), "sent": total, "rate": rate, "statuses": statuses,
            "customers": customers, "rss_start_mb": memory[0][1], "rss_end_mb": memory[-1][1],
            "rss_max_mb": max(m for _, m in memory), "memory": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--customers", type=int, default=300, help="distinct senders (each under the rate limit)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the demo model)")
    parser.add_argument("--warmup", type=int, default=50, help="messages sent before measuring")
    parser.add_argument("--no-report", action="store_true", help="print only; do not touch docs/")
    args = parser.parse_args()

    from adapters.runtime import ensure_demo_model
    from adapters.settings import Settings

    home = ROOT / ".frontdesk"
    model = args.model or ensure_demo_model(Settings(FRONTDESK_HOME=home, FRONTDESK_DEVICE="cpu"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FRONTDESK_MODEL_DIR": str(model), "FRONTDESK_HOME": str(home / "load"),
           "REDIS_URL": "", "FRONTDESK_DEVICE": "cpu", "FRONTDESK_LOG_LEVEL": "WARNING",
           "FRONTDESK_REDIS_PREFIX": f"load{int(time.time())}"}
    server = start([sys.executable, "-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", str(args.workers)], env, Path("/tmp/frontdesk-load.log"), ROOT)
    try:
        wait_http(f"{url}/readyz", server, consecutive=args.workers)
        if args.warmup:
            asyncio.run(open_loop(url, args.rate, args.warmup / args.rate, args.customers, 30, server.pid))
        result = asyncio.run(open_loop(url, args.rate, args.seconds, args.customers, 30, server.pid))
    finally:
        stop(server)
    result.update(workers=args.workers, load_average=[round(x, 2) for x in os.getloadavg()])
    print(json.dumps({k: v for k, v in result.items() if k != "memory"}, indent=2))
    if args.no_report:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    rows = [[f"{result['rate']:.0f}/s for {args.seconds:.0f} s", result["workers"], result["sent"], result["errors"],
             f"{result['rps']:.1f}", f"{result['p50_ms']:.1f}", f"{result['p99_ms']:.1f}",
             f"{result['rss_start_mb']:.0f} → {result['rss_end_mb']:.0f} (max {result['rss_max_mb']:.0f})"]]
    write_section("load", "## Steady load through `POST /chat` (`bench/load.py`)\n\n" + run_stamp() + "\n"
                  + table(["load", "workers", "messages", "errors", "answered/s", "p50 ms", "p99 ms",
                           "server RSS MB start → end"], rows)
                  + f"\n{result['customers']} customers sending demo-store questions in turn (each under the "
                    "default rate limit of 20 per minute), demo model, embedded Redis, one process. Memory sampled "
                    "every 5 s after a warm-up of " + str(args.warmup) + " messages: "
                  + ", ".join(f"{t:.0f} s {mb:.0f}" for t, mb in result["memory"][::2]) + " (MB).\n")


if __name__ == "__main__":
    main()
