"""Steady-rate load test of `POST /chat` with Redis: zero errors, p99, and flat memory (issue 7).

    python -m bench.load                     # 50 messages/s for 60 s, one worker (the issue's run)
    python -m bench.load --rate 20 --seconds 10 --no-report   # a quick check
    python -m bench.load --find-knee --seconds 20             # 25, 50, 75, … messages/s until p99 > 100 ms

Open loop: a message leaves every 1/rate seconds whether or not earlier ones were
answered, as real customers do, so a slow server shows up as latency and errors rather
than as a politely lower request rate. Only ever targets 127.0.0.1; bounded in count
(rate x seconds) and time (a per-request timeout). The server is `frontdesk serve` with
the demo model and FAQ on an embedded Redis; its resident memory is sampled throughout.

Where the time goes, over the measured window (the difference of two scrapes of the server's
Prometheus histograms): per `/chat` request, per model batch, and per message in each stage of
its handling (`frontdesk_message_stage_seconds`: intake, lease, classify, retrieve, decide, commit,
deliver; "other" is the rest of the server's time per request: HTTP, JSON, the thread hop). The
server's CPU seconds (its process and workers, from /proc) per message give its limit: messages
per second per core at 100 % utilisation. `--find-knee` steps the rate by `--knee-step` (at most
12 steps of `--seconds` each, on one server, each step with senders and message ids of its own)
until p99 passes 100 ms or a message fails, and reports the last rate under it.
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
from bench.load.loadgen import free_port, server_cpu_seconds, start, stop, summarise, wait_http
from bench.report import command, run_stamp, table, write_section

RESULTS = REPORT_DATA / "load.json"
KNEE_RESULTS = REPORT_DATA / "load-knee.json"
STAGES = ("intake", "lease", "classify", "retrieve", "decide", "commit", "deliver")  # bot.events.Stage
KNEE_P99_MS, KNEE_STEPS = 100.0, 12


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
    """The server's own histogram sums and counts: `/chat` requests, model batches, texts per batch, each stage's
    seconds (`stage_<name>_sum`) and the customer messages handled (`messages`)."""
    from prometheus_client.parser import text_string_to_metric_families

    names = {"frontdesk_http_request_duration_seconds": "chat", "frontdesk_http_request_seconds": "chat",
             "frontdesk_nlu_batch_seconds": "batch_seconds", "frontdesk_nlu_batch_duration_seconds": "batch_seconds",
             "frontdesk_nlu_batch_size": "batch_size"}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples if family.name == "frontdesk_message_stage_seconds" else ():
            if sample.name.endswith("_sum"):
                key = f"stage_{sample.labels.get('stage')}_sum"
                sums[key] = sums.get(key, 0.0) + sample.value
        for sample in family.samples if family.name in ("frontdesk_messages", "frontdesk_messages_total") else ():
            if sample.name == "frontdesk_messages_total":
                sums["messages"] = sums.get("messages", 0.0) + sample.value
        name = names.get(family.name)
        for sample in family.samples if name else ():
            if name == "chat" and sample.labels.get("route") != "/chat":
                continue
            for part in ("_sum", "_count"):
                if sample.name.endswith(part):
                    sums[name + part] = sums.get(name + part, 0.0) + sample.value
    return sums


def where_time_went(before: dict[str, float], after: dict[str, float]) -> dict:
    """Per `/chat` request, per model batch and per message in each stage over the measured window (the difference
    of two scrapes). A stage a message skipped (retrieve for small talk; deliver, which `/chat` never does) adds
    nothing to its sum, so a stage's mean is over every message; "other": the server's time per request in none."""
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    chats, batches, messages = d.get("chat_count", 0.0), d.get("batch_seconds_count", 0.0), d.get("messages", 0.0)
    stages = {s: 1000 * d.get(f"stage_{s}_sum", 0.0) / messages for s in STAGES} if messages else {}
    server_ms = 1000 * d.get("chat_sum", 0.0) / chats if chats else None
    return {"server_chat_ms": server_ms, "messages": messages, "stages_ms": stages,
            "other_ms": server_ms - sum(stages.values()) if stages and server_ms is not None else None,
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


async def open_loop(url: str, rate: float, seconds: float, customers: int, timeout: float, pid: int,
                    tag: str = "load") -> dict:
    """`rate` x `seconds` messages from `customers` senders; senders and message ids are `<tag>-N` (a second run on
    one server needs a tag of its own, or its messages are answered as duplicates of the first's)."""
    texts = questions()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    memory: list[tuple[float, float]] = []
    total = int(rate * seconds)
    started = time.perf_counter()

    async def one(i: int, session: aiohttp.ClientSession) -> None:
        body = {"sender": f"{tag}-{i % customers}", "message": texts[i % len(texts)], "message_id": f"{tag}-{i}"}
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


def measure(url: str, pid: int, rate: float, seconds: float, customers: int, tag: str) -> dict:
    """One open-loop run with the server's histograms and CPU time read before and after it."""
    import httpx

    before, cpu = server_sums(httpx.get(f"{url}/metrics", timeout=10).text), server_cpu_seconds(pid)
    result = asyncio.run(open_loop(url, rate, seconds, customers, 30, pid, tag))
    cpu = server_cpu_seconds(pid) - cpu
    result["time"] = where_time_went(before, server_sums(httpx.get(f"{url}/metrics", timeout=10).text))
    messages = result["time"]["messages"] or result["requests"]
    result["cpu"] = {"server_cpu_s": round(cpu, 2), "cpu_ms_per_message": 1000 * cpu / messages if messages else None,
                     "messages_per_core_s": messages / cpu if cpu > 0 else None}
    return result


def find_knee(url: str, pid: int, args) -> dict:
    """Rates of `--knee-step`, 2x, 3x, … (at most KNEE_STEPS) until p99 passes KNEE_P99_MS or a message fails."""
    steps, knee = [], None
    for step in range(1, KNEE_STEPS + 1):
        rate = args.knee_step * step
        # Enough senders that each stays under the default rate limit (20 a minute): at most 10 a minute each.
        result = measure(url, pid, rate, args.seconds, max(args.customers, int(rate * 6)), f"knee{step}")
        steps.append(result)
        print(f"{rate:.0f}/s: p99 {result['p99_ms']:.1f} ms, {result['errors']} failed", file=sys.stderr, flush=True)
        if result["p99_ms"] > KNEE_P99_MS or result["errors"]:
            break
        knee = rate
    return {"knee_rate": knee, "steps": steps}


def knows_query_encoders(tree: Path) -> bool:
    """Whether the code in `tree` reads FRONTDESK_QUERY_ENCODER (a baseline from before them does not)."""
    settings = tree / "adapters" / "runtime" / "settings.py"
    return settings.is_file() and "FRONTDESK_QUERY_ENCODER" in settings.read_text(encoding="utf-8")


def run_server(tree: Path, model: Path, args) -> dict:
    """`frontdesk serve` from the source tree `tree` (this one, or a worktree of the baseline), measured."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = ROOT / ".frontdesk"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FRONTDESK_MODEL_DIR": str(model),
           "FRONTDESK_HOME": str(home / f"load-{tree.name}"), "REDIS_URL": "", "FRONTDESK_DEVICE": "cpu",
           "FRONTDESK_LOG_LEVEL": "WARNING", "FRONTDESK_REDIS_PREFIX": f"load{int(time.time())}",
           "FRONTDESK_CHAT_TOKEN": CHAT_TOKEN,
           "PYTHONPATH": str(tree)}
    if args.query_encoder and knows_query_encoders(tree):  # both trees with it, where the baseline has them
        env["FRONTDESK_QUERY_ENCODER"] = str(args.query_encoder.resolve())
    server = start([sys.executable, "-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", str(args.workers)], env, Path(f"/tmp/frontdesk-load-{tree.name}.log"), tree)
    try:
        wait_http(f"{url}/readyz", server, consecutive=args.workers)
        if args.warmup:
            asyncio.run(open_loop(url, args.rate, args.warmup / args.rate, args.customers, 30, server.pid, "warm"))
        if args.find_knee:
            return find_knee(url, server.pid, args)
        return measure(url, server.pid, args.rate, args.seconds, args.customers, "load")
    finally:
        stop(server)


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


def _ms(value: float | None, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if value is not None else "–"


STAGE_HEADERS = [*(f"{s} ms" for s in STAGES), "other ms", "server CPU ms per message", "messages/s per core"]


def stage_cells(result: dict) -> list[str]:
    """Per message: each stage's mean ms, the server's time in none of them, CPU ms, and messages/s a core allows."""
    spent, cpu = result.get("time") or {}, result.get("cpu") or {}
    stages = spent.get("stages_ms") or {}
    return [*(_ms(stages.get(s), 2) for s in STAGES), _ms(spent.get("other_ms"), 2),
            _ms(cpu.get("cpu_ms_per_message"), 2), _ms(cpu.get("messages_per_core_s"), 0)]


def knee_report(by_workers: dict[str, dict]) -> str:
    """The knee section: per worker count (its latest run), each step's latency and stages, and the knees."""
    parts = ["## Where a message's time goes, and the knee (`python -m bench.load --find-knee`)\n\n" + run_stamp()]
    for workers, measured in sorted(by_workers.items()):
        runs, how = list(measured["runs"].items()), measured["how"]
        rows = [[label, f"{r['rate']:.0f}/s", r["sent"], r["errors"], f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                 _ms((r.get("time") or {}).get("server_chat_ms")), *stage_cells(r)]
                for label, result in runs for r in result["steps"]]
        knees = "; ".join(f"{label}: {result['knee_rate']:.0f} messages/s" if result["knee_rate"] else
                          f"{label}: none (p99 over {KNEE_P99_MS:.0f} ms, or failures, at the first rate)"
                          for label, result in runs)
        parts.append(
            f"\n### {workers} worker(s)\n\n`{how['command']}` at {how['date']}\n\n"
            + table(["code", "rate", "messages", "failed", "p50 ms", "p99 ms", "server ms per /chat",
                     *STAGE_HEADERS], rows)
            + f"\nKnee (the last rate with p99 ≤ {KNEE_P99_MS:.0f} ms and no failure): {knees}. Steps of "
              f"{how['knee_step']:.0f} messages/s, {how['seconds']:.0f} s each, on one server ({workers} worker(s), "
              f"embedded Redis, the demo model and FAQ) after a warm-up; load average after the run: "
              f"{runs[-1][1]['load_average']}.\n")
    parts.append("\nStage times are the server's own histograms (`frontdesk_message_stage_seconds`) per message over "
                 "each step; `/chat` has no push delivery, so deliver is 0. CPU is the server process and its workers "
                 "(/proc), background threads included. The load generator runs on the same two cores.\n")
    return "".join(parts)


def main() -> None:  # long because: the command line, both trees' runs and both reports in one readable place
    parser = argument_parser(__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--customers", type=int, default=300, help="distinct senders (each under the rate limit)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the demo model)")
    parser.add_argument("--warmup", type=int, default=50, help="messages sent before measuring")
    parser.add_argument("--baseline", default=None, help="git ref to measure first, same harness and model")
    parser.add_argument("--query-encoder", type=Path, default=None,
                        help="FRONTDESK_QUERY_ENCODER for this tree's server (`frontdesk kb encoder`)")
    parser.add_argument("--find-knee", action="store_true",
                        help=f"step the rate until p99 passes {KNEE_P99_MS:.0f} ms (at most {KNEE_STEPS} steps)")
    parser.add_argument("--knee-step", type=float, default=25.0, help="messages per second added each step")
    parser.add_argument("--no-report", action="store_true", help="print only; do not touch docs/")
    args = parser.parse_args()

    from adapters.runtime.demo_model import ensure_demo_model
    from adapters.runtime.settings import Settings

    model = (args.model or ensure_demo_model(Settings(FRONTDESK_HOME=ROOT / ".frontdesk",
                                                      FRONTDESK_DEVICE="cpu"))).resolve()
    runs: list[tuple[str, dict]] = []
    if args.baseline:
        runs.append((f"baseline {args.baseline}", run_server(baseline_tree(args.baseline), model, args)))
    runs.append(("this tree" + (" + query encoder" if args.query_encoder else ""), run_server(ROOT, model, args)))
    if args.baseline and args.query_encoder and knows_query_encoders(baseline_tree(args.baseline)):
        runs[0] = (runs[0][0] + " + query encoder", runs[0][1])
    for label, result in runs:
        result.update(workers=args.workers, load_average=[round(x, 2) for x in os.getloadavg()])
        shown = {k: v for k, v in result.items() if k != "memory"}
        if "steps" in shown:
            shown["steps"] = [{k: v for k, v in r.items() if k != "memory"} for r in shown["steps"]]
        print(label, json.dumps(shown, indent=2))
    if args.no_report:
        return
    if args.find_knee:
        by_workers = json.loads(KNEE_RESULTS.read_text()) if KNEE_RESULTS.is_file() else {}
        by_workers = {k: v for k, v in by_workers.items() if isinstance(v, dict) and "runs" in v}  # this layout
        by_workers[str(args.workers)] = {"runs": dict(runs), "how": {
            "command": command(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "knee_step": args.knee_step, "seconds": args.seconds}}
        KNEE_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        KNEE_RESULTS.write_text(json.dumps(by_workers, indent=2) + "\n")
        write_section("load-stages", knee_report(by_workers))
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
                  + ", ".join(f"{t:.0f} s {mb:.0f}" for t, mb in result["memory"][::2]) + " (MB).\n\n"
                  + "Per message (this tree), from the server's stage histograms and its CPU time:\n\n"
                  + table(STAGE_HEADERS, [stage_cells(result)]))


if __name__ == "__main__":
    main()
