"""Steady-rate load test of `POST /chat` with Redis: zero errors, p99, and flat memory (issue 7).

    python -m bench.load                     # 50 messages/s for 60 s, one worker (the issue's run)
    python -m bench.load --rate 20 --seconds 10 --no-report   # a quick check

Open loop: a message leaves every 1/rate seconds whether or not earlier ones were
answered, as real customers do, so a slow server shows up as latency and errors rather
than as a politely lower request rate. Only ever targets 127.0.0.1; bounded in count
(rate x seconds) and time (a per-request timeout). The server is `frontdesk serve` with
the demo model and FAQ on an embedded Redis; its resident memory is sampled throughout.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from bench._setup import REPORT_DATA, ROOT, argument_parser
from bench.load.loadgen import free_port, start, stop, summarise, wait_http
from bench.report import run_stamp, table, write_section

RESULTS = REPORT_DATA / "load.json"


def questions() -> list[str]:
    entries = yaml.safe_load((ROOT / "knowledge" / "demo" / "faq.yaml").read_text(encoding="utf-8"))
    entries = entries.get("entries", entries) if isinstance(entries, dict) else entries
    texts = [e["question"] for e in entries] + [a for e in entries for a in e.get("alternates", [])]
    return [*texts, "hello", "thanks!", "where is my order LH-48213?", "this is useless", "can I talk to a human"]


def failure_texts() -> dict[str, str]:
    """Replies that mean the bot did not do its job: an apology for an error, or the rate limit's refusal."""
    from bot.dispatch import APOLOGY

    wording = yaml.safe_load((ROOT / "bot" / "templates.yaml").read_text(encoding="utf-8"))
    return {APOLOGY: "200-apology", wording["unavailable"]: "200-apology", wording["rate_limited"]: "200-rate-limited"}


FAILURES = failure_texts()


def outcome(payload: dict) -> str:
    """"200" for a real answer; a 200 carrying an apology or a rate-limit refusal counts as a failure."""
    replies = payload.get("replies")
    if not isinstance(replies, list):
        return "200-malformed"
    for reply in replies:
        if reply.get("text") in FAILURES:
            return FAILURES[reply["text"]]
    return "200"


def server_sums(metrics_text: str) -> dict[str, float]:
    """The server's own histogram sums and counts: `/chat` requests, model batches, texts per batch."""
    from prometheus_client.parser import text_string_to_metric_families

    names = {"frontdesk_http_request_duration_seconds": "chat", "frontdesk_http_request_seconds": "chat",
             "frontdesk_nlu_batch_seconds": "batch_seconds", "frontdesk_nlu_batch_duration_seconds": "batch_seconds",
             "frontdesk_nlu_batch_size": "batch_size"}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        name = names.get(family.name)
        for sample in family.samples if name else ():
            if name == "chat" and sample.labels.get("route") != "/chat":
                continue
            for part in ("_sum", "_count"):
                if sample.name.endswith(part):
                    sums[name + part] = sums.get(name + part, 0.0) + sample.value
    return sums


def where_time_went(before: dict[str, float], after: dict[str, float]) -> dict:
    """Per `/chat` request and per model batch over the measured window (the difference of two scrapes)."""
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    chats, batches = d.get("chat_count", 0.0), d.get("batch_seconds_count", 0.0)
    return {"server_chat_ms": 1000 * d.get("chat_sum", 0.0) / chats if chats else None,
            "model_ms_per_batch": 1000 * d.get("batch_seconds_sum", 0.0) / batches if batches else None,
            "texts_per_batch": d.get("batch_size_sum", 0.0) / batches if batches else None,
            "model_ms_per_message": 1000 * d.get("batch_seconds_sum", 0.0) / chats if chats else None}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), in MB."""
    total = 0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


# POST /chat needs the REST channel's token: the measured server gets this one (a baseline from before tokens
# ignores the header).
CHAT_TOKEN = secrets.token_urlsafe(32)


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
            async with session.post(f"{url}/chat", json=body,
                                    headers={"Authorization": f"Bearer {CHAT_TOKEN}"}) as response:
                payload = await response.json()
                key = str(response.status) if response.status != 200 else outcome(payload)
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


def run_server(tree: Path, model: Path, args) -> dict:
    """`frontdesk serve` from the source tree `tree` (this one, or a worktree of the baseline), measured."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = ROOT / ".frontdesk"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FRONTDESK_MODEL_DIR": str(model),
           "FRONTDESK_HOME": str(home / f"load-{tree.name}"), "REDIS_URL": "", "FRONTDESK_DEVICE": "cpu",
           "FRONTDESK_LOG_LEVEL": "WARNING", "FRONTDESK_REDIS_PREFIX": f"load{int(time.time())}",
           "FRONTDESK_CHAT_TOKEN": CHAT_TOKEN,
           "PYTHONPATH": str(tree)}
    server = start([sys.executable, "-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", str(args.workers)], env, Path(f"/tmp/frontdesk-load-{tree.name}.log"), tree)
    try:
        wait_http(f"{url}/readyz", server, consecutive=args.workers)
        if args.warmup:
            asyncio.run(open_loop(url, args.rate, args.warmup / args.rate, args.customers, 30, server.pid))
        before = server_sums(httpx.get(f"{url}/metrics", timeout=10).text)
        result = asyncio.run(open_loop(url, args.rate, args.seconds, args.customers, 30, server.pid))
        result["time"] = where_time_went(before, server_sums(httpx.get(f"{url}/metrics", timeout=10).text))
    finally:
        stop(server)
    return result


def baseline_tree(ref: str) -> Path:
    """A worktree of the baseline commit (the same harness drives both servers)."""
    import subprocess

    tree = Path("/tmp") / f"frontdesk-baseline-{ref[:12]}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True,
                       capture_output=True)
    return tree


def row(label: str, result: dict, seconds: float) -> list:
    failures = {k: n for k, n in result["statuses"].items() if k != "200"}
    spent = result.get("time") or {}
    return [label, f"{result['rate']:.0f}/s for {seconds:.0f} s", result["workers"], result["sent"],
            result["errors"], ", ".join(f"{k}: {n}" for k, n in sorted(failures.items())) or "none",
            f"{result['rps']:.1f}", f"{result['p50_ms']:.1f}", f"{result['p99_ms']:.1f}",
            _ms(spent.get("server_chat_ms")), _ms(spent.get("model_ms_per_batch")),
            f"{spent['texts_per_batch']:.1f}" if spent.get("texts_per_batch") else "–",
            f"{result['rss_start_mb']:.0f} → {result['rss_end_mb']:.0f} (max {result['rss_max_mb']:.0f})"]


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "–"


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--customers", type=int, default=300, help="distinct senders (each under the rate limit)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the demo model)")
    parser.add_argument("--warmup", type=int, default=50, help="messages sent before measuring")
    parser.add_argument("--baseline", default=None, help="git ref to measure first, same harness and model")
    parser.add_argument("--no-report", action="store_true", help="print only; do not touch docs/")
    args = parser.parse_args()

    from adapters.runtime.demo_model import ensure_demo_model
    from adapters.runtime.settings import Settings

    model = (args.model or ensure_demo_model(Settings(FRONTDESK_HOME=ROOT / ".frontdesk",
                                                      FRONTDESK_DEVICE="cpu"))).resolve()
    runs: list[tuple[str, dict]] = []
    if args.baseline:
        runs.append((f"baseline {args.baseline}", run_server(baseline_tree(args.baseline), model, args)))
    runs.append(("this tree", run_server(ROOT, model, args)))
    for label, result in runs:
        result.update(workers=args.workers, load_average=[round(x, 2) for x in os.getloadavg()])
        print(label, json.dumps({k: v for k, v in result.items() if k != "memory"}, indent=2))
    if args.no_report:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(dict(runs), indent=2) + "\n")
    result = runs[-1][1]
    write_section("load", "## Steady load through `POST /chat` (`python -m bench.load`)\n\n" + run_stamp() + "\n"
                  + table(["code", "load", "workers", "messages", "failed", "failures", "answered/s", "p50 ms",
                           "p99 ms", "server ms per /chat", "model ms per batch", "texts per batch",
                           "server RSS MB start → end"], [row(label, r, args.seconds) for label, r in runs])
                  + f"\n{result['customers']} customers sending demo-store questions in turn (each under the "
                    "default rate limit of 20 per minute), the same demo model for both, embedded Redis, "
                    f"{args.workers} worker(s). A reply that is an apology or a rate-limit refusal counts as a "
                    "failure. "
                    "Server and model times come from the server's own Prometheus histograms over the measured "
                    "window; the rest of the client's latency is queueing and HTTP. Memory (this tree) sampled "
                    "every 5 s after a warm-up of " + str(args.warmup) + " messages: "
                  + ", ".join(f"{t:.0f} s {mb:.0f}" for t, mb in result["memory"][::2]) + " (MB).\n")


if __name__ == "__main__":
    main()
