"""Retrieval defaults chosen by cross-validation over whole StackFAQ threads
(`python -m bench.faq --parts stackfaq-cv`).

Every thread of every StackFAQ file lands in one of K folds; for each fold a configuration is chosen on the
other folds' threads alone (their queries against an index of their entries), then scored on the held-out
threads' queries against an index holding ALL entries. A query's own thread never takes part in choosing the
configuration it is scored with. Two FAQs are built from the same threads:
- no alternates: each (question, answer) pair is an entry, queried with every rephrasing (the data set's README);
- alternates: ALTERNATES of each thread's rephrasings (a seeded draw) become alternates of every entry of the
  thread, the others are its queries. Only here can a centroid blend or the covariance adapter matter: the fixed
  blend of 0.5 that shipped before scored exactly as the plain encoder without alternates, and lost to it
  on held-out threads with them.

Every candidate is also scored on every held-out fold, beside the plain encoder (the best cosine over an entry's
question and alternates, nothing else) and BM25 alone. `recommend` adopts a candidate only where choosing it
transfers and it is never below the plain encoder on any fold, for P@1 and MRR@10, in either FAQ.

Every text is embedded once (`EmbeddingCache`); each configuration is then a real `FaqIndex` searched through
`search_vectors`, the path the product serves, so what is measured is what ships.
"""

from __future__ import annotations

import json
import random
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

import knowledge.index as kindex
from bench._setup import DATA
from bench.report import table
from knowledge.embedder import EmbeddingCache
from knowledge.index import FaqIndex, RetrievalConfig, entry_texts
from knowledge.sources import FaqEntry

FOLDS = 5
SEED = 7
ALTERNATES = 3  # of a thread's (about ten) rephrasings; "three alternates an entry", as BANKING77-as-FAQ has
VARIANTS = {"none": 0, "alternates": ALTERNATES}
EPS = 1e-9


@dataclass(frozen=True)
class Candidate:
    answer: float = 0.0  # the answers' text weight (0: not embedded)
    centroid_weight: float | None = 0.0  # None: chosen from the FAQ's alternates when built (`knowledge.blending`)
    bm25_weight: float = 0.0
    adapter: float | None = None  # covariance adapter strength learned from the alternates

    @property
    def label(self) -> str:
        parts = ["answer ×" + f"{self.answer:g}" if self.answer else "",
                 "blend if proven" if self.centroid_weight is None else
                 (f"blend {self.centroid_weight:g}" if self.centroid_weight else ""),
                 f"BM25 {self.bm25_weight:g}" if self.bm25_weight else "",
                 f"adapter {self.adapter:g}" if self.adapter else ""]
        return "plain encoder" + "".join(f" + {p}" for p in parts if p)

    def config(self) -> RetrievalConfig:
        return RetrievalConfig(centroid_weight=self.centroid_weight, bm25_weight=self.bm25_weight,
                               adapter_strength=self.adapter)


PLAIN = Candidate()  # the base encoder: best cosine over question and alternates
PREVIOUS = Candidate(centroid_weight=0.5)  # the previous default (and, with answers ×0.85, the one before issue 17)


def grid() -> list[Candidate]:
    """Simplest first: ties keep the earlier one, so a knob is only switched on when it helps."""
    out = [PLAIN]
    for answer in (0.0, 0.85):  # answer-aware scoring: the answer embedded beside the question
        for centroid in (0.0, None, 0.25, 0.5, 0.75):
            for bm25 in (0.0, 0.05, 0.1):  # score fusion with BM25 over question, alternates and answer
                if Candidate(answer, centroid, bm25) not in out:
                    out.append(Candidate(answer, centroid, bm25))
    return [*out, Candidate(adapter=4.0)]


def shipped() -> Candidate:
    """What the product uses now: `TEXT_WEIGHTS` and `RetrievalConfig()` as they are in knowledge/index.py."""
    config = RetrievalConfig()
    return Candidate(kindex.TEXT_WEIGHTS["answer"], config.centroid_weight, config.bm25_weight, config.adapter_strength)


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


def bm25_only(entries: list[FaqEntry], queries: list[str]) -> list[list[str]]:
    """BM25 alone over each entry's question, alternates and answer (no dense retrieval at all)."""
    import bm25s

    corpus = [" ".join([e.question, *e.alternates, e.answer]) for e in entries]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    docs, _ = retriever.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False),
                                 k=min(10, len(entries)), show_progress=False)
    return [[entries[i].id for i in row] for row in docs]


def load_threads() -> list[dict]:
    """Every thread of every StackFAQ file present (the dev half here; both halves where both are)."""
    threads = []
    for path in sorted((DATA / "stackfaq").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():  # ids made unique across files: each half may number its threads from 0
                thread = json.loads(line)
                threads.append({**thread, "id": f"{path.stem}/{thread['id']}"})
    return threads


def split_rephrasings(thread: dict, alternates: int) -> tuple[list[str], list[str]]:
    """(alternates, queries): a seeded draw of `alternates` rephrasings, the rest asked as queries."""
    texts = list(thread["rephrasings"])
    random.Random(f"{SEED}-{thread['id']}").shuffle(texts)
    return texts[:alternates], texts[alternates:]


def thread_entries(thread: dict, alternates: int = 0) -> list[FaqEntry]:
    """Each (question, answer) pair of a thread is one FAQ entry, as the data set's README prescribes."""
    alts = tuple(split_rephrasings(thread, alternates)[0])
    return [FaqEntry(f"{thread['id']}-{i}", thread["question"], answer, alts)
            for i, answer in enumerate(thread["answers"])]


class Scorer:
    """Scores candidates on (entries, queries) splits with every text embedded once."""

    def __init__(self, cache: EmbeddingCache, threads: list[dict]):
        texts = list(dict.fromkeys(t for th in threads for t in (th["question"], *th["answers"], *th["rephrasings"])))
        self.vectors = dict(zip(texts, cache.encode(texts), strict=True))

    def score(self, candidate: Candidate | None, threads: list[dict], everything: list[dict], alternates: int) -> dict:
        """`threads`' queries against an index of `everything`'s entries; candidate None: BM25 alone."""
        entries = [e for th in everything for e in thread_entries(th, alternates)]
        queries, relevant = [], []
        for th in threads:
            ids = {f"{th['id']}-{i}" for i in range(len(th["answers"]))}
            for query in split_rephrasings(th, alternates)[1]:
                queries.append(query)
                relevant.append(ids)
        if candidate is None:
            return rank_metrics(bm25_only(entries, queries), relevant)
        with answer_weight(candidate.answer):
            texts, _, _ = entry_texts(entries)
            index = FaqIndex(entries, np.stack([self.vectors[t] for t in texts]), candidate.config())
        hits = index.search_vectors(np.stack([self.vectors[q] for q in queries]), queries, top_k=10)
        return {**rank_metrics([[h.id for h in row] for row in hits], relevant), "blend": index.centroid_weight}


def fold_of(threads: list[dict], folds: int = FOLDS, seed: int = SEED) -> list[int]:
    order = list(range(len(threads)))
    random.Random(seed).shuffle(order)
    out = [0] * len(threads)
    for position, i in enumerate(order):
        out[i] = position % folds
    return out


def _key(metrics: dict) -> tuple[float, float]:
    return round(metrics["p_at_1"], 9), round(metrics["mrr_at_10"], 9)


def at_least(metrics: dict, plain: dict) -> bool:
    """Not below the plain encoder, on P@1 nor on MRR@10."""
    return all(metrics[m] >= plain[m] - EPS for m in ("p_at_1", "mrr_at_10"))


def run_cv(cache: EmbeddingCache, limit: int | None = None, folds: int = FOLDS) -> dict:
    """K folds over whole threads, for each FAQ variant; per fold every candidate's held-out scores."""
    threads = load_threads()[:limit]
    assignment = fold_of(threads, folds)
    scorer = Scorer(cache, threads)
    candidates = grid()
    fixed = {"plain": PLAIN, "previous": PREVIOUS, "shipped": shipped()}
    out = {"threads": len(threads), "entries": sum(len(th["answers"]) for th in threads), "grid": len(candidates),
           "alternates": ALTERNATES, "labels": {n: c.label for n, c in fixed.items()}, "variants": {}}
    for variant, alternates in VARIANTS.items():
        rows = []
        for k in range(folds):
            train = [th for th, f in zip(threads, assignment, strict=True) if f != k]
            held_out = [th for th, f in zip(threads, assignment, strict=True) if f == k]
            on_train = [scorer.score(c, train, train, alternates) for c in candidates]
            best = max(range(len(candidates)), key=lambda i: _key(on_train[i]))  # first of equals: the simplest
            every = {c.label: scorer.score(c, held_out, threads, alternates) for c in candidates}
            named = {n: every.get(c.label) or scorer.score(c, held_out, threads, alternates) for n, c in fixed.items()}
            row = {"fold": k, "threads": len(held_out), "chosen": asdict(candidates[best]),
                   "chosen_label": candidates[best].label, "chosen_train": on_train[best],
                   "held_out": {**named, "bm25": scorer.score(None, held_out, threads, alternates),
                                "chosen": every[candidates[best].label]}, "candidates": every}
            print(f"{variant} fold {k}: {row['chosen_label']}",
                  {n: round(m["p_at_1"], 4) for n, m in row["held_out"].items()}, flush=True)
            rows.append(row)
        out["variants"][variant] = {"folds": rows, "queries": sum(r["held_out"]["plain"]["queries"] for r in rows),
                                    "spread": spread(rows)}
    out["recommended"] = recommend(out)
    return out


def recommend(result: dict) -> dict:
    """The configuration to ship: the one chosen most often, adopted only where choosing transfers.

    The configurations each fold chose from the other folds must not be below the plain encoder on any held-out
    fold (P@1 and MRR@10, both FAQs): those are the only scores no query's own thread helped to choose. The most
    chosen configuration must not be below it on any fold either. Where either fails, the plain encoder. Reported
    beside it: whether the shipped default is below the plain encoder on any fold.
    """
    variants = result["variants"].values()
    folds = [row for v in variants for row in v["folds"]]
    transfers = all(at_least(row["held_out"]["chosen"], row["held_out"]["plain"]) for row in folds)
    counts: dict[str, int] = {}
    for row in folds:
        counts[row["chosen_label"]] = counts.get(row["chosen_label"], 0) + 1
    most = max(counts, key=counts.get)
    never_below = all(at_least(row["candidates"][most], row["held_out"]["plain"]) for row in folds)
    shipped_ok = all(at_least(row["held_out"]["shipped"], row["held_out"]["plain"]) for row in folds)
    adopted = transfers and never_below
    safe = [label for label in folds[0]["candidates"]
            if all(at_least(row["candidates"][label], row["held_out"]["plain"]) for row in folds)]
    return {"most_chosen": most, "most_chosen_in_folds": counts[most], "folds": len(folds),
            "chosen_never_below_plain": transfers, "most_chosen_never_below_plain": never_below,
            "label": most if adopted else PLAIN.label, "fallback": not adopted,
            "shipped_never_below_plain": shipped_ok, "never_below_plain": safe}


def spread(rows: list[dict]) -> dict:
    out = {}
    for name in rows[0]["held_out"]:
        for metric in ("p_at_1", "mrr_at_10"):
            values = np.asarray([row["held_out"][name][metric] for row in rows])
            out.setdefault(name, {})[metric] = {"mean": float(values.mean()), "std": float(values.std(ddof=1))
                                                if len(values) > 1 else 0.0,
                                                "min": float(values.min()), "max": float(values.max())}
    return out


NAMES = {"plain": "(a) plain encoder", "bm25": "(b) BM25 alone", "previous": "(c) fixed blend 0.5",
         "chosen": "(d) chosen on the other folds", "shipped": "(e) shipped default"}
LETTERS = ["(a)", "(b)", "(c)", "(d)", "(e)"]


def _fold_table(variant: dict) -> str:
    rows = []
    for row in variant["folds"]:
        h = row["held_out"]
        rows.append([row["fold"] + 1, row["threads"], h["plain"]["queries"], row["chosen_label"],
                     *(h[n]["p_at_1"] for n in NAMES), *(h[n]["mrr_at_10"] for n in NAMES)])
    s = variant["spread"]
    rows.append(["mean ± std", "", "", "", *(f"{s[n]['p_at_1']['mean']:.4f} ± {s[n]['p_at_1']['std']:.4f}"
                                             for n in NAMES),
                 *(f"{s[n]['mrr_at_10']['mean']:.4f} ± {s[n]['mrr_at_10']['std']:.4f}" for n in NAMES)])
    rows.append(["min–max", "", "", "", *(f"{s[n]['p_at_1']['min']:.4f}–{s[n]['p_at_1']['max']:.4f}" for n in NAMES),
                 *(f"{s[n]['mrr_at_10']['min']:.4f}–{s[n]['mrr_at_10']['max']:.4f}" for n in NAMES)])
    return table(["fold", "threads", "queries", "(d) chosen on the other folds", *(f"P@1 {x}" for x in LETTERS),
                  *(f"MRR@10 {x}" for x in LETTERS)], rows)


def _candidate_table(result: dict) -> str:
    """Each candidate's held-out mean per FAQ, and on how many folds it fell below the plain encoder."""
    variants = result["variants"]
    rows = []
    for label in variants["none"]["folds"][0]["candidates"]:
        cells = [label]
        for variant in variants.values():
            scores = [row["candidates"][label] for row in variant["folds"]]
            below = sum(not at_least(m, row["held_out"]["plain"]) for m, row in zip(scores, variant["folds"],
                                                                                     strict=True))
            cells += [float(np.mean([m["p_at_1"] for m in scores])), float(np.mean([m["mrr_at_10"] for m in scores])),
                      below]
        rows.append(cells)
    return table(["candidate", "P@1 no alternates", "MRR@10 no alternates", "folds below (a)",
                  f"P@1 {result['alternates']} alternates", f"MRR@10 {result['alternates']} alternates",
                  "folds below (a) "], rows)


def render_cv(result: dict) -> list[str]:
    """Markdown for docs/BENCHMARKS.md: per-fold tables for both FAQs, every candidate's means, the choice."""
    if "variants" not in result:  # a run from before the alternates variant: re-run `--parts stackfaq-cv`
        return ["StackFAQ cross-validation: re-run `python -m bench.faq --parts stackfaq-cv`.\n"]
    rec, variants = result["recommended"], result["variants"]
    lines = []
    for variant, title in (("none", "no alternates: every rephrasing is a query"),
                           ("alternates", f"{result['alternates']} of each thread's rephrasings as alternates of "
                                          "its entries, the others as queries")):
        lines += [f"### StackFAQ, {FOLDS}-fold cross-validation over whole threads, {title} ({result['threads']} "
                  f"threads, {result['entries']} entries, {variants[variant]['queries']} queries)", "",
                  _fold_table(variants[variant])]
    verdict = (f"chosen most often: {rec['most_chosen']} ({rec['most_chosen_in_folds']} of {rec['folds']} folds); "
               + ("adopted" if not rec["fallback"] else
                  "the choices do not transfer (a fold's choice, or the most chosen, falls below (a) on a held-out "
                  "fold), so the recommendation falls back to (a)"))
    lines += [
        "(a) " + result["labels"]["plain"] + ": the best cosine over an entry's question and alternates, base "
        "all-MiniLM-L6-v2, nothing else; (b) BM25 over question, alternates and answer; (c) "
        f"{result['labels']['previous']}; (d) the best of {result['grid']} configurations (answer weight, centroid "
        "blend, BM25 fusion weight, covariance adapter) on the other folds' queries against an index of their entries "
        f"only; (e) {result['labels']['shipped']}: `TEXT_WEIGHTS` and `RetrievalConfig()` as shipped, the blend chosen "
        "per index from its own alternates (`knowledge.blending`). Held-out queries are scored against an index of "
        "every entry of every thread, through `FaqIndex.search_vectors`; folds are whole threads (seed "
        f"{SEED}).\n",
        "Every candidate on the held-out folds (mean over folds; folds below (a) on P@1 or MRR@10):\n",
        _candidate_table(result),
        f"Recommendation of this run (`bench.faq.cv.recommend`): {verdict}; recommended: {rec['label']}. "
        f"(e) below (a) on any fold, either FAQ: {'no' if rec['shipped_never_below_plain'] else 'yes'}. "
        f"{len(rec['never_below_plain'])} of {result['grid']} candidates are never below (a) on any fold of "
        "either FAQ (the zeros above).\n",
    ]
    return lines
