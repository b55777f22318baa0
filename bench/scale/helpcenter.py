"""A 1,000-article help center for bench.scale, built under bench/results from ../shared/data (never the repo).

Mastodon's 34 documentation articles are copied unchanged. The rest are made from StackFAQ's 62 threads
(StackExchange web-apps questions with several answers each): an article per thread, titled with the thread's
question, one section per answer headed by one of the thread's phrasings (its question and rephrasings, in
turn). StackFAQ has far fewer threads than the 966 articles needed, so each thread gives several articles:
the k-th copy is titled with the thread's k-th phrasing (numbered once the phrasings run out) and starts its
section headings one phrasing further on. Every passage and sentence row therefore has text of its own (the
title and heading lead each embedded text), so nothing is shared in the embedding cache and the index holds as
many distinct rows as a help center of this size and shape would; the answers repeat, which matters to
retrieval quality (not measured here), not to memory or start-up time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from bench._setup import DATA, WORK, require_data

FOLDER = WORK / "scale-helpcenter"  # a knowledge folder: articles/ only
MASTODON = DATA / "helpcenter-mastodon" / "articles"
STACKFAQ = DATA / "stackfaq" / "dev.jsonl"
# What was built, so a second run reuses it: beside the folder, since a .json inside it would be read as an FAQ.
MANIFEST = WORK / "scale-helpcenter-manifest.json"


def thread_article(thread: dict, copy: int) -> str:
    """One StackFAQ thread as a Markdown article: front matter, then a section per answer."""
    phrasings = [thread["question"], *thread["rephrasings"]]
    title = phrasings[copy % len(phrasings)]
    if copy >= len(phrasings):
        title = f"{title} ({copy // len(phrasings) + 1})"
    front = yaml.safe_dump({"title": title, "tags": ["stackfaq"]}, allow_unicode=True, sort_keys=False)
    lines = [f"---\n{front}---\n"]
    for j, answer in enumerate(thread["answers"]):
        heading = " ".join(phrasings[(copy + j + 1) % len(phrasings)].split())
        lines.append(f"## {heading}\n\n{answer.strip()}\n")
    return "\n".join(lines)


def build(count: int = 1000) -> tuple[Path, dict]:
    """The knowledge folder with `count` articles (built once; rebuilt if the count differs)."""
    manifest_path = MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("articles") == count:
            return FOLDER, manifest
    require_data()
    if FOLDER.exists():
        shutil.rmtree(FOLDER)
    articles = FOLDER / "articles"
    shutil.copytree(MASTODON, articles / "mastodon")
    mastodon = sum(1 for p in (articles / "mastodon").rglob("*") if p.suffix in (".md", ".mdx", ".markdown"))
    threads = [json.loads(line) for line in STACKFAQ.read_text(encoding="utf-8").splitlines() if line.strip()]
    made = 0
    while mastodon + made < count:
        thread = threads[made % len(threads)]
        copy = made // len(threads)
        path = articles / "stackfaq" / f"copy{copy}" / f"{thread['id']}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(thread_article(thread, copy), encoding="utf-8")
        made += 1
    manifest = {"articles": mastodon + made, "mastodon_articles": mastodon, "stackfaq_articles": made,
                "stackfaq_threads": len(threads), "copies_per_thread": round(made / len(threads), 1)}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return FOLDER, manifest


def index_rows(folder: Path) -> dict:
    """Entries, passages and embedded rows (by kind) of a knowledge folder, read as the product reads it."""
    from collections import Counter

    from knowledge.index import embedded_rows
    from knowledge.loading import load_knowledge

    loaded = load_knowledge(folder)
    kinds = Counter(kind for _, kind, _ in embedded_rows(loaded.entries))
    return {**loaded.summary(), "entries": len(loaded.entries), "rows": sum(kinds.values()),
            "rows_by_kind": dict(kinds)}
