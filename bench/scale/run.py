"""Frontdesk at scale: search over 100k and 1M passages, memory per worker, and cold start (docs/SCALING.md).

    python -m bench.scale                                   # every part (the 1M search build takes tens of minutes)
    python -m bench.scale --parts search --sizes 100000     # one part, smaller
    python -m bench.scale --parts memory,coldstart --reps-demo 3 --reps-helpcenter 1
    python -m bench.scale --parts coldstart --reps-demo 0 --reps-helpcenter 2   # the help center again only

Parts:
- `search`: p50/p99 of one-query searches, recall@1 against exact search, build seconds and index bytes per
  passage, with each passage indexed as the product indexes it (its heading, its text and each sentence: rows
  per passage drawn from a real help center's), on synthetic 384-d vectors (bench/scale/search.py).
- `memory`: RSS, PSS, USS and shared memory of every process of `frontdesk serve` with 1 and 2 workers, on the
  demo knowledge base and on a 1,000-article help center built from ../shared/data, after readiness and after a
  warm-up of 50 `/chat` messages; what a worker's memory is made of (bench/scale/memory.py, steps.py).
- `coldstart`: seconds from spawning `frontdesk serve` to `/readyz` 200, cold (empty FRONTDESK_HOME) and warm.

The model is the demo intent model (`--model`, default bench/results/dialogue-home/models/demo: 4 layers, int8
ONNX). Each part's results are kept in bench/results/scale.json, so parts run separately add up; the section is
rendered from all of them. Servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from bench._setup import ROOT, WORK, argument_parser
from bench.report import part_stamp, write_section
from bench.scale import servers

RESULTS = WORK / "scale.json"
PARTS = ("search", "memory", "coldstart")


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}


def tree_state() -> dict:
    """The commit measured and the files changed beside it (others may be editing the tree while a part runs)."""
    import subprocess

    def git(*args: str) -> str:  # not stripped: a status line starts with its two status columns, maybe blank
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "modified": [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]}


def save_part(name: str, value: dict) -> dict:
    """Store one part's results beside the others (read again first: another part may have finished meanwhile)."""
    results = load_results()
    results[name] = {**value, "_run": part_stamp(), "_tree": tree_state()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    parser.add_argument("--model", type=Path, default=servers.DEMO_MODEL, help="intent model directory the servers use")
    parser.add_argument("--sizes", default="100000,1000000", help="search part: passage counts")
    parser.add_argument("--reps-demo", type=int, default=3,
                        help="coldstart part: cold+warm pairs on the demo (0: keep the earlier figures)")
    parser.add_argument("--reps-helpcenter", type=int, default=1, help="coldstart part: pairs on the help center")
    parser.add_argument("--no-report", action="store_true", help="keep the results; do not touch docs/")
    args = parser.parse_args()
    # Stopped with SIGTERM: unwind, so the servers this run started are stopped by their `finally` blocks too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s): {', '.join(unknown)}")
    model = args.model.resolve()
    if "search" in parts or not parts:
        from bench.scale.search import run as run_search

        save_part("search", run_search(tuple(int(s) for s in args.sizes.split(","))))
    if "memory" in parts:
        from bench.scale.memory import run_memory

        save_part("memory", run_memory(model))
    if "coldstart" in parts:
        from bench.scale.memory import run_coldstart

        reps = {"demo": args.reps_demo, "helpcenter": args.reps_helpcenter}
        # A knowledge base given 0 repetitions keeps its earlier figures (each names its own run).
        earlier = load_results().get("coldstart", {})
        kept = {k: {"run": earlier.get("_run"), **v} for k, v in earlier.items()
                if not k.startswith("_") and not reps[k]}
        measured = run_coldstart(model, reps, lambda partial: save_part("coldstart", kept | partial))
        save_part("coldstart", kept | measured)
    if not args.no_report:
        from bench.scale.report import render

        path = write_section("scale", render(load_results()))
        print(f"wrote the scale section of {path.relative_to(ROOT)} (results: {RESULTS.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
