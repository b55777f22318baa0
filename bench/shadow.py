"""`POST /chat` latency with and without a shadow model running (target: p99 at most 20 % worse with one).

    python -m bench.shadow                        # 40 messages/s for 30 s each way, one worker
    python -m bench.shadow --rate 20 --seconds 10 # a quick check

The same open-loop load as `python -m bench.load` (bench.load.run.open_loop: a message every 1/rate s
whether or not earlier ones were answered; 127.0.0.1 only; bounded in count, rate x seconds, and in
time, a per-request timeout) is run twice against `frontdesk serve` with the demo model
(bench/results/dialogue-home/models/demo, 4 layers, int8 ONNX), the demo knowledge base and an
embedded Redis: first with no shadow, then with `POST /admin/model/shadow` running the 6-layer teacher
(bench/results/dialogue-home/models/demo-teacher) beside it within FRONTDESK_SHADOW_BUDGET.

Each run gets a freshly started server with a Redis prefix of its own: open_loop names its senders and
message ids `load-N` in every run, so a second run on the same server would be answered as duplicates
of the first. Every message comes from its own sender (a fresh conversation), so every one is
classified, and seen by the shadow, rather than waiting for staff after an escalation. A warm-up from
other senders comes first (with the shadow: once it runs on every worker, and until it has seen every
warm-up message), unmeasured. The shadow's figures for the run are the difference of two readings of
`GET /admin/model/shadow`; what it had neither compared nor skipped by the end was still in its queue.
The load average before and after each run is recorded: on a shared 2-core machine it moves the numbers.
Written: bench/results/shadow.json, and a Markdown table on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path

import httpx

from bench._setup import ROOT, WORK, argument_parser
from bench.load import loadgen, run
from bench.report import machine, run_stamp, table

RESULTS = WORK / "shadow.json"
MODELS = WORK / "dialogue-home" / "models"
ADMIN_TOKEN = secrets.token_urlsafe(32)
TARGET = 1.20  # the shadow's p99 over the baseline's, at most


def warm_up(url: str, count: int, tag: str) -> None:
    """`count` messages from senders of their own, one at a time, unmeasured (never open_loop's `load-N` ids)."""
    texts = run.questions()
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {run.CHAT_TOKEN}"}) as client:
        for i in range(count):
            answered = client.post(f"{url}/chat", json={"sender": f"warm-{tag}-{i}", "message": texts[i % len(texts)]})
            answered.raise_for_status()


def shadow_status(url: str) -> dict:
    found = httpx.get(f"{url}/admin/model/shadow", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
    found.raise_for_status()
    return found.json()


def start_shadow(url: str, candidate: Path, workers: int, warm: int) -> dict:
    """The shadow on every worker, warmed up: `warm` messages sent once it runs everywhere, and all of them seen
    (compared, or skipped) before the measured run starts."""
    started = httpx.post(f"{url}/admin/model/shadow", json={"path": str(candidate)}, timeout=300,
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    if started.status_code != 200:
        raise SystemExit(f"the shadow did not start: {started.status_code} {started.text[:500]}")
    deadline = time.monotonic() + 300
    while sum(w["running"] for w in shadow_status(url).get("workers", [])) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"the shadow is not running on {workers} worker(s): {shadow_status(url)}")
        time.sleep(0.5)
    warm_up(url, warm, "shadow")
    # Each worker reports its figures every heartbeat (2 s); the warm-up's last ones may still wait in its queue.
    while (status := shadow_status(url))["compared"] + status["skipped"] < warm:
        if time.monotonic() > deadline:
            raise SystemExit(f"the shadow did not see the warm-up: {status}")
        time.sleep(0.5)
    return status


def measure(label: str, model: Path, candidate: Path | None, args) -> dict:
    """One freshly started server, warmed up, then the open-loop load; with `candidate`, a shadow throughout."""
    port = loadgen.free_port()
    url = f"http://127.0.0.1:{port}"
    # The bench's own environment, nothing inherited that could switch a chat platform on or point elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRONTDESK_", "SLACK_", "TELEGRAM_", "REDIS_"))}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", FRONTDESK_MODEL_DIR=str(model),
               FRONTDESK_KB=str(ROOT / "knowledge" / "demo"), FRONTDESK_HOME=str(WORK / "shadow-home"),
               REDIS_URL="",  # empty: `serve` starts an embedded Redis under FRONTDESK_HOME
               FRONTDESK_REDIS_PREFIX=f"shadow-{label}-{int(time.time())}", FRONTDESK_DEVICE="cpu",
               FRONTDESK_LOG_LEVEL="WARNING", FRONTDESK_ADMIN_TOKEN=ADMIN_TOKEN, FRONTDESK_CHAT_TOKEN=run.CHAT_TOKEN,
               # One address, one sender per message: neither limit is what is measured.
               FRONTDESK_RATE_LIMIT="0/60", FRONTDESK_IP_RATE_LIMIT="0/60", PYTHONPATH=str(ROOT))
    if args.budget is not None:
        env["FRONTDESK_SHADOW_BUDGET"] = str(args.budget)
    log = Path(f"/tmp/frontdesk-shadow-{label}.log")
    server = loadgen.start([sys.executable, "-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port",
                            str(port), "--workers", str(args.workers)], env, log, ROOT)
    try:
        loadgen.wait_http(f"{url}/readyz", server, consecutive=args.workers)
        warm_up(url, args.warmup, "serving")
        shadow = start_shadow(url, candidate, args.workers, args.warmup) if candidate is not None else None
        messages = int(args.rate * args.seconds)
        customers = args.customers or messages  # 0: a sender of its own for every message
        before_sums = run.server_sums(httpx.get(f"{url}/metrics", timeout=10).text)
        cpu, load_before = loadgen.server_cpu_seconds(server.pid), loadgen.load_average()
        result = asyncio.run(run.open_loop(url, args.rate, args.seconds, customers, 30, server.pid))
        result["server_cpu_s"] = round(loadgen.server_cpu_seconds(server.pid) - cpu, 2)
        result["time"] = run.where_time_went(before_sums, run.server_sums(httpx.get(f"{url}/metrics", timeout=10).text))
        result["load_average"] = {"before": load_before, "after": loadgen.load_average()}
        if shadow is not None:
            time.sleep(2.5)  # one heartbeat: every worker has reported what it did during the run
            after = shadow_status(url)
            window = {k: after[k] - shadow[k] for k in ("compared", "skipped", "decisions_changed")}
            # Every measured message is offered once (a sender of its own each): compared, skipped, or still
            # waiting in the shadow's queue when the run ended.
            window["queued"] = result["sent"] - window["compared"] - window["skipped"]
            result["shadow"] = {**after, "window": window}
    except BaseException:
        print(f"server log ({log}):\n" + log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        loadgen.stop(server)
    result.pop("memory", None)
    return {**result, "customers": customers}


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--rate", type=float, default=40.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds, each way")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=40, help="messages sent before measuring (unmeasured)")
    parser.add_argument("--customers", type=int, default=0,
                        help="distinct senders in the load (0: one per message, so every message is classified)")
    parser.add_argument("--budget", type=float, default=None, help="FRONTDESK_SHADOW_BUDGET (default: the server's)")
    parser.add_argument("--model", type=Path, default=MODELS / "demo", help="the serving model")
    parser.add_argument("--candidate", type=Path, default=MODELS / "demo-teacher", help="the shadow model")
    args = parser.parse_args()
    model, candidate = args.model.resolve(), args.candidate.resolve()
    for path in (model, candidate):
        if not (path / "config.json").is_file():
            raise SystemExit(f"{path} is not a model directory")

    baseline = measure("baseline", model, None, args)
    print("without a shadow", json.dumps(baseline, indent=2), flush=True)
    shadowed = measure("shadow", model, candidate, args)
    print("with a shadow", json.dumps(shadowed, indent=2), flush=True)

    ratio = shadowed["p99_ms"] / baseline["p99_ms"] if baseline["p99_ms"] else float("nan")
    shadow = shadowed["shadow"]
    out = {"model": str(model), "candidate": candidate.name, "rate": args.rate, "seconds": args.seconds,
           "workers": args.workers, "budget": args.budget, "machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "p99_ratio": round(ratio, 3), "target_ratio": TARGET, "within_target": ratio <= TARGET,
           "baseline": baseline, "shadow": shadowed}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")

    def row(label: str, r: dict) -> list:
        return [label, r["sent"], r["errors"], f"{r['rps']:.1f}", f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}",
                f"{r['p99_ms']:.1f}", f"{r['server_cpu_s']:.1f}",
                " / ".join(f"{x:.2f}" for x in (r["load_average"]["before"][0], r["load_average"]["after"][0]))]

    print("\n## `POST /chat` with and without a shadow model (`python -m bench.shadow`)\n\n" + run_stamp())
    print(table(["run", "messages", "failed", "answered/s", "p50 ms", "p95 ms", "p99 ms", "server CPU s",
                 "load avg before / after"], [row("no shadow", baseline), row("shadow", shadowed)]))
    print(f"{args.rate:.0f} messages/s for {args.seconds:.0f} s each way, {args.workers} worker(s), serving "
          f"{model.name}, shadow {candidate.name} (budget {args.budget or 'the server default'}). "
          f"p99 ratio {ratio:.2f} (target at most {TARGET:.2f}: {'met' if out['within_target'] else 'NOT met'}). "
          f"Shadow during the measured run ({shadowed['sent']} messages): compared {shadow['window']['compared']}, "
          f"skipped {shadow['window']['skipped']}, still queued {shadow['window']['queued']}, "
          f"decisions changed {shadow['window']['decisions_changed']}; "
          f"overall agreement {shadow['agreement']}, failed batches {shadow['failed']}.\nWritten: {RESULTS}")


if __name__ == "__main__":
    main()
