"""The help-center benchmark: a real product's documentation served as a team's whole knowledge base.

Mastodon's user and admin documentation (34 Markdown articles with Hugo front matter, in
../shared/data/helpcenter-mastodon) is copied into a knowledge folder's `articles/`, with no
FAQ, no alternates and no calibration questions: the answer rule is calibrated on questions
generated from the articles (`knowledge.generation`). The bot is the product's own: the
default (demo) intent model, a real Redis, `Bot.handle`. Each reply is judged by what it cites.

Questions (bench/helpcenter/cases/, written in customers' words from the articles before any
answer was seen, and never used to set anything): covered ones name the article that answers
them; uncovered ones nothing answers; near misses sit next to a covered topic no article answers.

Parts:
- `bot`: the end-to-end outcomes against the issue's targets (correct >= 75 %, wrong <= 5 %,
  uncovered declined >= 85 %, near misses declined >= 70 %).
- `retrieval`: in the same run, the article ranked first (P@1) and MRR@10 on the covered
  questions for the product's passage index and two baselines: dense retrieval of whole
  articles (one vector per article) and BM25 over the same passages.
- `reload`: build and reload times on 1,000 synthetic articles, one article changed.

    python -m bench.helpcenter [--parts bot,retrieval,reload]
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import sys
import tempfile
from pathlib import Path

os.environ["FRONTDESK_ARTICLES_BASE_URL"] = "https://docs.joinmastodon.org"  # the product reads it (Settings)

from bench._setup import DATA, REPORT_DATA, WORK, argument_parser, require_data
from bench.dialogue.harness import (
    BenchBot,
    BenchRedis,
    Case,
    Judge,
    Runner,
    build_kb,
    demo_model,
    load_engine_for,
    run_set,
)
from bench.report import part_stamp, table, write_section

CASES = Path(__file__).resolve().parent / "cases"
RESULTS = REPORT_DATA / "helpcenter.json"
HOME = WORK / "dialogue-home"  # shares the dialogue benchmark's demo model
ARTICLES = DATA / "helpcenter-mastodon" / "articles"
BASE_URL = os.environ["FRONTDESK_ARTICLES_BASE_URL"]
PARTS = ("bot", "retrieval", "reload")
TARGETS = {"correct": 0.75, "wrong": 0.05, "uncovered_declined": 0.85, "near_miss_declined": 0.70}


def read_cases() -> tuple[list[Case], list[Case], list[Case]]:
    def rows(name: str) -> list[dict]:
        with (CASES / name).open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))

    covered = [Case(r["text"].strip(), tuple(i.strip() for i in r["id"].split("|") if i.strip()))
               for r in rows("mastodon_covered.csv")]
    uncovered = [Case(r["text"].strip()) for r in rows("mastodon_uncovered.csv")]
    near = [Case(r["text"].strip()) for r in rows("mastodon_near_miss.csv")]
    return covered, uncovered, near


def knowledge_folder(root: Path) -> Path:
    """A knowledge folder holding only the help center's articles (copied: the data stays out of the repo)."""
    folder = root / "mastodon-kb"
    if not folder.exists():
        shutil.copytree(ARTICLES, folder / "articles")
    return folder


# ---------------------------------------------------------------- parts
def run_bot(redis, engine, folder: Path, cases) -> dict:
    covered, uncovered, near = cases
    kb, options, entries = build_kb(folder, HOME, engine=engine)
    built = BenchBot(redis.client, engine, kb, folder, HOME)
    runner = Runner(built.bot, Judge(built.bot, entries), threads=8)
    try:
        out = {"covered": run_set(runner, covered, True, "help center covered"),
               "uncovered": run_set(runner, uncovered, False, "help center uncovered"),
               "near_miss": run_set(runner, near, False, "help center near misses"),
               "kb": {**kb.index.summary, "calibration": kb.index.thresholds.method,
                      "measured_on_generated": kb.index.thresholds.measured},
               "kb_options": options}
    finally:
        built.close()
        kb.close()
    out["errors"] = sorted(set(runner.errors))[:10]
    return out


def _rank_metrics(ranked: list[list[str]], expected: list[tuple[str, ...]]) -> dict:
    p1 = sum(bool(r) and r[0] in e for r, e in zip(ranked, expected, strict=True)) / len(expected)
    rr = []
    for r, e in zip(ranked, expected, strict=True):
        rank = next((i for i, item in enumerate(r[:10], start=1) if item in e), None)
        rr.append(1 / rank if rank else 0.0)
    return {"p_at_1": round(p1, 4), "mrr_at_10": round(sum(rr) / len(rr), 4), "n": len(expected)}


def run_retrieval(folder: Path, cases) -> dict:
    import bm25s
    import numpy as np

    from knowledge.embedder import Embedder, EmbeddingCache
    from knowledge.index import FaqIndex, RetrievalConfig, entry_texts
    from knowledge.loading import load_knowledge

    covered = cases[0]
    queries = [c.text for c in covered]
    expected = [c.expected for c in covered]
    loaded = load_knowledge(folder, BASE_URL)
    embedder = Embedder()
    cache = EmbeddingCache(embedder, HOME / "helpcenter-cache")
    query_vectors = cache.encode(queries)
    out = {}
    # The product's passage index: the article of the best passage.
    index = FaqIndex(loaded.entries, cache.encode(entry_texts(loaded.entries)[0]), RetrievalConfig())
    ranked = [[h.id for h in hits] for hits in index.search_vectors(query_vectors, queries, top_k=10)]
    out["passages (product)"] = _rank_metrics(ranked, expected)
    # Dense retrieval of whole articles: one vector per article (the encoder reads its first 256 word pieces).
    articles = loaded.articles
    texts = [a.title + "\n" + "\n".join(b.text for s in a.sections for b in s.blocks if b.kind != "code")
             for a in articles]
    vectors = cache.encode(texts)
    order = np.argsort(-(query_vectors @ vectors.T), axis=1)[:, :10]
    out["whole articles, dense"] = _rank_metrics([[articles[i].id for i in row] for row in order], expected)
    # BM25 over the same passages, best passage per article.
    corpus = [e.body or e.question for e in loaded.entries]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    bm25_ranked = []
    for words in bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False):
        scores = retriever.get_scores(words) if words else np.zeros(len(corpus))
        seen: list[str] = []
        for i in np.argsort(-np.asarray(scores)):
            article = loaded.entries[int(i)].answer_id
            if article not in seen:
                seen.append(article)
            if len(seen) == 10:
                break
        bm25_ranked.append(seen)
    out["passages, BM25"] = _rank_metrics(bm25_ranked, expected)
    cache.save()
    for name, metrics in out.items():
        print(f"-- retrieval {name}: P@1 {metrics['p_at_1']:.3f}  MRR@10 {metrics['mrr_at_10']:.3f}", flush=True)
    return out


def synthetic_help_center(folder: Path, n: int, seed: int = 0) -> None:
    """`n` articles of a made-up product, each with a few sections, lists and code, in Markdown."""
    rng = random.Random(seed)
    nouns = ("invoice", "workspace", "backup", "webhook", "report", "export", "domain", "team", "token", "printer",
             "calendar", "schedule", "folder", "profile", "payment", "license", "device", "template", "alert", "sync")
    verbs = ("create", "delete", "rename", "share", "restore", "configure", "archive", "import", "connect", "verify")
    for i in range(n):
        noun, verb = rng.choice(nouns), rng.choice(verbs)
        lines = [f"---\ntitle: How to {verb} a {noun} ({i})\ntags: [{noun}]\n---\n",
                 f"This guide explains how to {verb} a {noun} in product area {i}.\n"]
        for s in range(rng.randint(3, 6)):
            other = rng.choice(nouns)
            lines.append(f"## {verb.title()} the {other} step {s}\n")
            lines.append(f"To {verb} the {other}, open Settings and choose {other.title()} {i}-{s}. "
                         f"The {noun} keeps its history for {rng.randint(7, 90)} days. "
                         f"Admins can {rng.choice(verbs)} it from the {rng.choice(nouns)} page.\n")
            lines.append(f"- Open the {other} list\n- Select item {s}\n- Press {verb.title()}\n")
            if s % 2:
                lines.append(f"```\ncli {verb} --{other} {i}{s}\n```\n")
        (folder / f"area{i % 20}").mkdir(parents=True, exist_ok=True)
        (folder / f"area{i % 20}" / f"article-{i}.md").write_text("\n".join(lines), encoding="utf-8")


def run_reload(engine, n: int = 1000) -> dict:
    from knowledge.embedder import Embedder
    from knowledge.service import KnowledgeBase

    root = Path(tempfile.mkdtemp(prefix="helpcenter-reload-"))
    try:
        articles = root / "kb" / "articles"
        synthetic_help_center(articles, n)
        kb = KnowledgeBase(root / "kb", embedder=Embedder(), cache_dir=root / "cache",
                           classify=engine.predict if engine is not None else None)
        first = kb.reload()
        changed_file = articles / "area3" / "article-3.md"
        changed_file.write_text(changed_file.read_text() + "\n## A new section\n\nRefunds take five days.\n")
        one = kb.reload()
        unchanged = kb.reload()
        changed_file.unlink()
        removed = kb.reload()
        out = {**kb.index.summary, "synthetic_articles": n,
               "first_build_s": round(first.seconds, 2), "first_build_embedded": first.embedded_texts,
               "one_changed_s": round(one.seconds, 2), "one_changed_embedded": one.embedded_texts,
               "none_changed_s": round(unchanged.seconds, 2),
               "one_removed_s": round(removed.seconds, 2), "one_removed_embedded": removed.embedded_texts,
               "calibration": kb.index.thresholds.method}
        kb.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"-- reload: {json.dumps(out)}", flush=True)
    return out


# ---------------------------------------------------------------- report
def render(results: dict) -> str:
    lines = ["## Help-center articles (Mastodon's documentation)\n",
             "`python -m bench.helpcenter` on the 34 articles of ../shared/data/helpcenter-mastodon (GNU FDL 1.3), "
             "served as the whole knowledge base: no FAQ, no alternates, no hand-written calibration questions "
             "(the answer rule is calibrated on questions generated from the articles). The bot is the product's "
             "own with the default demo intent model and a real Redis; a reply counts by the article it cites. "
             "The questions (bench/helpcenter/cases/) were written in customers' words before any answer was "
             "seen and set nothing.\n"]
    bot = results.get("bot")
    if bot:
        cov, unc, near = bot["covered"], bot["uncovered"], bot["near_miss"]
        rows = [
            ["covered answered from a right article", f"{cov['rates']['correct']:.1%}", f"{cov['n']}", ">= 75 %"],
            ["covered answered from a wrong article", f"{cov['rates']['wrong']:.1%}", "", "<= 5 %"],
            ["covered given suggestions with a right one", f"{cov['rates']['suggest_right']:.1%}", "", ""],
            ["uncovered declined (or only suggestions)", f"{unc['rates']['declined']:.1%}", f"{unc['n']}", ">= 85 %"],
            ["near misses declined (or only suggestions)", f"{near['rates']['declined']:.1%}", f"{near['n']}",
             ">= 70 %"],
        ]
        lines += [table(["outcome", "rate", "questions", "target"], rows),
                  f"\nKnowledge base: {bot['kb'].get('articles')} articles, {bot['kb'].get('sections')} sections, "
                  f"{bot['kb'].get('passages')} passages. Calibration: {bot['kb']['calibration']}. "
                  f"Run: {bot['_run']['date']}.\n"]
    retrieval = results.get("retrieval")
    if retrieval:
        lines += ["\nRetrieval alone on the covered questions, same run (the article ranked first):\n",
                  table(["method", "P@1", "MRR@10", "questions"],
                        [[name, m["p_at_1"], m["mrr_at_10"], m["n"]] for name, m in retrieval.items()
                         if not name.startswith("_")])]
    lines += ["""
What these numbers say:
- **Targets.** Wrong answers stay under 5 % and near misses are declined, but about half of the covered questions
  are answered right, against a target of 75 % (a third more get suggestions that hold the right article), and
  uncovered questions are declined below the 85 % target. The rule, calibrated on generated questions for at most
  5 % wrong answers, sets its bar high because on the generated questions about a fifth of the top-ranked articles
  are wrong ones. Retrieval is the limit: the right article ranks first for 79 % of the covered questions, so
  75 % answered right would need nearly every question answered, near misses included. A stronger encoder or a
  re-ranker (none ships offline here) is the next lever.
- **Baselines, same run.** One dense vector per whole article finds the right article first for 50 % of the
  questions, BM25 over the same passages for 53 %, the product's passage index for 79 %.
- **How the retrieval design was chosen.** Sentence vectors beside each passage's vector (72 % to 79 % first
  hits) and no centroid blend for passages were compared on these covered questions, so the retrieval row is not
  a clean held-out figure; the demo store's article questions (bench.dialogue) are a second, untouched set.
  No threshold was set on any of these questions: the bars come from generated questions only.
- **Links.** The articles' ids are their paths in the data folder (`content/en/user/moving`), so the links built
  from FRONTDESK_ARTICLES_BASE_URL are not the site's real pages; a team sets `url` in front matter, or lays the
  folder out as its site is.
"""]
    reload = results.get("reload")
    if reload:
        lines += [f"\nReload on {reload['synthetic_articles']} synthetic articles ({reload.get('passages')} passages): "
                  f"first build {reload['first_build_s']} s ({reload['first_build_embedded']} texts embedded); "
                  f"one article changed {reload['one_changed_s']} s ({reload['one_changed_embedded']} embedded); "
                  f"nothing changed {reload['none_changed_s']} s; one removed {reload['one_removed_s']} s. "
                  f"Target: at most 3 s with one article changed.\n"]
    return "\n".join(lines)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    require_data(ARTICLES)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    HOME.mkdir(parents=True, exist_ok=True)
    cases = read_cases()
    model_dir, _ = demo_model(HOME)
    engine = load_engine_for(model_dir, HOME)
    redis = BenchRedis()
    scratch = Path(tempfile.mkdtemp(prefix="helpcenter-"))
    try:
        folder = knowledge_folder(scratch)
        for part in parts:
            print(f"== {part}", flush=True)
            if part == "bot":
                outcome = run_bot(redis, engine, folder, cases)
            elif part == "retrieval":
                outcome = run_retrieval(folder, cases)
            elif part == "reload":
                outcome = run_reload(engine)
            else:
                raise SystemExit(f"unknown part {part!r}; choose from {PARTS}")
            stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            stored[part] = {**outcome, "_run": part_stamp()}
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(stored, indent=2, ensure_ascii=False) + "\n")
            write_section("helpcenter", render(stored))
    finally:
        engine.close()
        redis.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
