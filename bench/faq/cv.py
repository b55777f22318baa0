"""Retrieval defaults chosen by cross-validation over whole StackFAQ threads
(`python -m bench.faq --parts stackfaq-cv`).

Defaults chosen on one split did not transfer to the other (issue 17): the answer embedding and
the centroid blend helped on the threads they were tuned on and cost P@1 elsewhere. Here every
thread of every StackFAQ file lands in one of K folds; for each fold the configuration is chosen
on the other folds' threads alone (their queries against an index of their entries), then scored
on the held-out threads' queries against an index holding ALL entries. A query's own thread never
takes part in choosing the configuration it is scored with.

Every text is embedded once (`EmbeddingCache`); each configuration is then a real `FaqIndex`
searched through `search_vectors`, the path the product serves, so what is measured is what ships.
"""

from __future__ import annotations

import json
import random
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

import knowledge.index as kindex
from bench._setup import DATA
from bench.report import table
from knowledge.embedder import EmbeddingCache
from knowledge.index import FaqIndex, RetrievalConfig, entry_texts
from knowledge.sources import FaqEntry

FOLDS = 5
SEED = 7
# Before issue 17: every answer embedded at weight 0.85, half of the score from the entry's centroid.
PREVIOUS = {"answer": 0.85, "centroid_weight": 0.5, "bm25_weight": 0.0}
# The knobs that can matter on StackFAQ, whose entries are (question, answer) pairs without alternates:
# the answer's weight (0: not embedded), the centroid blend and BM25. The alternates' weight and the
# covariance adapter need alternates, so the BANKING77 part measures those.
ANSWER_WEIGHTS = (0.0, 0.7, 0.8, 0.85, 0.9, 1.0)
CENTROID_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
BM25_WEIGHTS = (0.0, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class Candidate:
    answer: float
    centroid_weight: float
    bm25_weight: float

    @property
    def label(self) -> str:
        embedded = "question + alternates" + (f" + answer ×{self.answer:g}" if self.answer > 0 else "")
        return f"{embedded}; centroid {self.centroid_weight:g}; BM25 {self.bm25_weight:g}"

    def config(self) -> RetrievalConfig:
        return RetrievalConfig(centroid_weight=self.centroid_weight, bm25_weight=self.bm25_weight)


BASELINE = Candidate(0.0, 0.0, 0.0)  # the base encoder on the question text alone (and alternates, where any)


def grid() -> list[Candidate]:
    """Simplest first: ties keep the earlier one, so a knob is only switched on when it helps."""
    out = [BASELINE]
    for answer in ANSWER_WEIGHTS:
        # Without answers or alternates an entry's centroid is its question: the blend changes nothing.
        for centroid in CENTROID_WEIGHTS if answer > 0 else (0.0,):
            for bm25 in BM25_WEIGHTS:
                candidate = Candidate(answer, centroid, bm25)
                if candidate not in out:
                    out.append(candidate)
    return out


def shipped() -> Candidate:
    """What the product uses now: `TEXT_WEIGHTS` and `RetrievalConfig()` as they are in knowledge/index.py."""
    config = RetrievalConfig()
    return Candidate(kindex.TEXT_WEIGHTS["answer"], config.centroid_weight, config.bm25_weight)


@contextmanager
def answer_weight(weight: float):
    """Index with the answers weighted `weight`: the product reads TEXT_WEIGHTS when it builds an index,
    so the grid sets it exactly as a changed default would, and puts it back afterwards."""
    before = kindex.TEXT_WEIGHTS["answer"]
    kindex.TEXT_WEIGHTS["answer"] = weight
    try:
        yield
    finally:
        kindex.TEXT_WEIGHTS["answer"] = before


def rank_metrics(ranked: list[list[str]], relevant: list[set[str]]) -> dict:
    p1, rr = [], []
    for hits, good in zip(ranked, relevant, strict=True):
        p1.append(float(bool(hits) and hits[0] in good))
        rank = next((i + 1 for i, h in enumerate(hits[:10]) if h in good), None)
        rr.append(1.0 / rank if rank else 0.0)
    return {"p_at_1": float(np.mean(p1)), "mrr_at_10": float(np.mean(rr)), "queries": len(ranked)}


def load_threads() -> list[dict]:
    """Every thread of every StackFAQ file present (the dev half here; both halves where both are)."""
    threads = []
    for path in sorted((DATA / "stackfaq").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():  # ids made unique across files: each half may number its threads from 0
                thread = json.loads(line)
                threads.append({**thread, "id": f"{path.stem}/{thread['id']}"})
    return threads


def thread_entries(thread: dict) -> list[FaqEntry]:
    """Each (question, answer) pair of a thread is one FAQ entry, as the data set's README prescribes."""
    return [FaqEntry(f"{thread['id']}-{i}", thread["question"], answer) for i, answer in enumerate(thread["answers"])]


class Scorer:
    """Scores candidates on (entries, queries) splits with every text embedded once."""

    def __init__(self, cache: EmbeddingCache, threads: list[dict]):
        texts = [t for th in threads for t in (th["question"], *th["answers"], *th["rephrasings"])]
        self.vectors = dict(zip(texts, cache.encode(texts), strict=True))

    def score(self, candidate: Candidate, entries: list[FaqEntry], threads: list[dict]) -> dict:
        queries = [q for th in threads for q in th["rephrasings"]]
        relevant = [{e.id for e in thread_entries(th)} for th in threads for _ in th["rephrasings"]]
        with answer_weight(candidate.answer):
            texts, _, _ = entry_texts(entries)
            index = FaqIndex(entries, np.stack([self.vectors[t] for t in texts]), candidate.config())
        hits = index.search_vectors(np.stack([self.vectors[q] for q in queries]), queries, top_k=10)
        return rank_metrics([[h.id for h in row] for row in hits], relevant)


def fold_of(threads: list[dict], folds: int = FOLDS, seed: int = SEED) -> list[int]:
    order = list(range(len(threads)))
    random.Random(seed).shuffle(order)
    out = [0] * len(threads)
    for position, i in enumerate(order):
        out[i] = position % folds
    return out


def choose(scorer: Scorer, candidates: list[Candidate], threads: list[dict]) -> tuple[Candidate, dict]:
    """The best P@1 (then MRR@10) on these threads' queries against an index of their own entries."""
    entries = [e for th in threads for e in thread_entries(th)]
    best, best_metrics = None, None
    for candidate in candidates:
        metrics = scorer.score(candidate, entries, threads)
        key = (round(metrics["p_at_1"], 9), round(metrics["mrr_at_10"], 9))
        if best is None or key > (round(best_metrics["p_at_1"], 9), round(best_metrics["mrr_at_10"], 9)):
            best, best_metrics = candidate, metrics
    return best, best_metrics


def run_cv(cache: EmbeddingCache, limit: int | None = None, folds: int = FOLDS) -> dict:
    """K folds over whole threads; per fold the chosen configuration and held-out scores; a recommendation."""
    threads = load_threads()[:limit]
    assignment = fold_of(threads, folds)
    scorer = Scorer(cache, threads)
    everything = [e for th in threads for e in thread_entries(th)]
    candidates = grid()
    fixed = {"baseline": BASELINE, "previous": Candidate(**PREVIOUS), "shipped": shipped()}
    rows = []
    for k in range(folds):
        train = [th for th, f in zip(threads, assignment, strict=True) if f != k]
        held_out = [th for th, f in zip(threads, assignment, strict=True) if f == k]
        chosen, train_metrics = choose(scorer, candidates, train)
        row = {"fold": k, "threads": len(held_out), "chosen": chosen.__dict__, "chosen_label": chosen.label,
               "chosen_train": train_metrics,
               "held_out": {name: scorer.score(c, everything, held_out) for name, c in
                            {**fixed, "chosen": chosen}.items()}}
        print(f"fold {k}: {chosen.label}",
              {name: round(m["p_at_1"], 4) for name, m in row["held_out"].items()}, flush=True)
        rows.append(row)
    recommended = recommend(scorer, rows, everything, threads, assignment)
    return {"folds": rows, "threads": len(threads), "entries": len(everything),
            "queries": sum(len(th["rephrasings"]) for th in threads), "grid": len(candidates),
            "baseline": BASELINE.label, "previous": fixed["previous"].label, "shipped": fixed["shipped"].label,
            "recommended": recommended, "spread": spread(rows)}


def recommend(scorer: Scorer, rows: list[dict], everything: list[FaqEntry], threads: list[dict],
              assignment: list[int]) -> dict:
    """The configuration to ship: the one chosen most often, adopted only where choosing transfers.

    It must not be below the baseline on any held-out fold, and neither may the configurations each
    fold chose from the other folds: those are the only scores no query's own thread helped to choose,
    and defaults that lose on threads they were not chosen on are what issue 17 reported. Where either
    fails, the baseline itself (question and alternates only), which equals the baseline on every fold.
    """
    baseline = [row["held_out"]["baseline"]["p_at_1"] for row in rows]
    transfers = all(row["held_out"]["chosen"]["p_at_1"] >= b - 1e-9 for row, b in zip(rows, baseline, strict=True))
    counts: dict[Candidate, int] = {}
    for row in rows:
        counts[Candidate(**row["chosen"])] = counts.get(Candidate(**row["chosen"]), 0) + 1
    candidate = max(counts, key=counts.get)
    per_fold = [scorer.score(candidate, everything, [th for th, f in zip(threads, assignment, strict=True)
                                                     if f == row["fold"]])["p_at_1"] for row in rows]
    never_below = all(p >= b - 1e-9 for p, b in zip(per_fold, baseline, strict=True))
    out = {"most_chosen": candidate.label, "most_chosen_in_folds": counts[candidate],
           "most_chosen_p_at_1": per_fold, "chosen_never_below_baseline": transfers,
           "most_chosen_never_below_baseline": never_below}
    best = candidate if transfers and never_below else BASELINE
    return {**out, **best.__dict__, "label": best.label, "fallback": best == BASELINE}


def spread(rows: list[dict]) -> dict:
    out = {}
    for name in rows[0]["held_out"]:
        for metric in ("p_at_1", "mrr_at_10"):
            values = np.asarray([row["held_out"][name][metric] for row in rows])
            out.setdefault(name, {})[metric] = {"mean": float(values.mean()), "std": float(values.std(ddof=1))
                                                if len(values) > 1 else 0.0,
                                                "min": float(values.min()), "max": float(values.max())}
    return out


NAMES = {"baseline": "(a) question-only dense baseline", "previous": "(b) previous default",
         "chosen": "(c) chosen on the other folds", "shipped": "(d) shipped default"}


def render_cv(result: dict) -> list[str]:
    """Markdown for docs/BENCHMARKS.md: per-fold rows, then mean ± std and min–max across folds."""
    rows = []
    for row in result["folds"]:
        h = row["held_out"]
        rows.append([row["fold"] + 1, row["threads"], h["baseline"]["queries"], row["chosen_label"],
                     *(h[name]["p_at_1"] for name in NAMES), *(h[name]["mrr_at_10"] for name in NAMES)])
    s = result["spread"]
    rows.append(["mean ± std", "", "", "", *(f"{s[n]['p_at_1']['mean']:.4f} ± {s[n]['p_at_1']['std']:.4f}"
                                             for n in NAMES),
                 *(f"{s[n]['mrr_at_10']['mean']:.4f} ± {s[n]['mrr_at_10']['std']:.4f}" for n in NAMES)])
    rows.append(["min–max", "", "", "", *(f"{s[n]['p_at_1']['min']:.4f}–{s[n]['p_at_1']['max']:.4f}" for n in NAMES),
                 *(f"{s[n]['mrr_at_10']['min']:.4f}–{s[n]['mrr_at_10']['max']:.4f}" for n in NAMES)])
    letters = ["(a)", "(b)", "(c)", "(d)"]
    rec = result["recommended"]
    below = [str(row["fold"] + 1) for row in result["folds"]
             if row["held_out"]["chosen"]["p_at_1"] < row["held_out"]["baseline"]["p_at_1"] - 1e-9]
    verdict = (f"the configurations chosen on other folds (c) fell below (a) on fold(s) {', '.join(below)}, so "
               "choosing the answer's weight and the blend does not transfer, and the default falls back to (a)"
               if rec["fallback"] and below else
               f"chosen most often: {rec['most_chosen']} ({rec['most_chosen_in_folds']} of {len(result['folds'])} "
               f"folds){'; it is below (a) on a fold, so the default falls back to (a)' if rec['fallback'] else ''}")
    below_d = [row for row in result["folds"]
               if row["held_out"]["shipped"]["p_at_1"] < row["held_out"]["baseline"]["p_at_1"] - 1e-9]
    no_effect = ("Without answers or alternates an entry's centroid is its question, so (d)'s blend scores here "
                 "exactly as (a); it is kept for FAQs with alternates, where BANKING77-as-FAQ measures it. "
                 if "answer" not in result["shipped"] else "")
    return [
        f"### StackFAQ, {len(result['folds'])}-fold cross-validation over whole threads "
        f"({result['threads']} threads, {result['entries']} entries, {result['queries']} queries)", "",
        table(["fold", "threads", "queries", "(c) chosen on the other folds", *(f"P@1 {x}" for x in letters),
               *(f"MRR@10 {x}" for x in letters)], rows),
        f"(a) {result['baseline']}: the base encoder on the question text alone (StackFAQ entries have no "
        f"alternates); (b) {result['previous']}: the default before issue 17; (c) the best of {result['grid']} "
        "configurations (answer weight, 0 meaning not embedded; centroid blend; BM25 weight) on the other folds' "
        "queries against an index of their entries only; (d) "
        f"{result['shipped']}: `TEXT_WEIGHTS` and `RetrievalConfig()` as shipped. Held-out queries are scored "
        "against an index of every entry of every thread, through `FaqIndex.search_vectors`; folds are whole "
        f"threads (seed {SEED}). Recommendation of this run (`bench.faq.cv.recommend`): {verdict}; "
        f"recommended: {rec['label']}. {no_effect}(d) below (a) on any fold: {'yes' if below_d else 'no'}.\n",
    ]
