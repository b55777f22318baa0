"""The dialogue benchmark's questions and FAQs: the demo store's cases, BANKING77 as a linked FAQ with
CLINC150's out-of-scope queries, and the angriest airline tweets. Public data is read from ../shared/data.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

from bench._setup import DATA, ROOT
from bench.dialogue.harness import Case

CASES = Path(__file__).resolve().parent / "cases"
SEED = 7
OOS_SAMPLE = 300  # CLINC150 out-of-scope queries: val has 100, so train's 100 are added (200 in all)
TWEETS = 200  # per airline set
# "Angriest" negative tweets: an anger word below plus a second signal (an exclamation mark or another
# anger word). The airline set has no confidence or negative-reason column, so the rule is lexical.
ANGER = re.compile(r"\b(worst|terrible|horrible|awful|ridiculous|unacceptable|disgusting|pathetic|furious|angry|"
                   r"rude|useless|incompetent|hate|disgrace|shameful|joke|never again|fuck\w*|shit\w*|wtf|sucks?)\b",
                   re.IGNORECASE)
ANGER_RULE = ("negative tweets with an anger word (worst, terrible, horrible, awful, ridiculous, unacceptable, "
              "disgusting, pathetic, furious, angry, rude, useless, incompetent, hate, disgrace, shameful, joke, "
              "never again, wtf, sucks, profanity) and a second signal (an exclamation mark or another anger word)")


class CasesMissing(RuntimeError):
    """The demo case files are not there (yet)."""


# ---------------------------------------------------------------- demo store
def demo_cases(folder: Path, known_ids: set[str]) -> tuple[list[Case], list[Case]]:
    """demo_covered.csv (`text,faq_id,tone`, ids joined by `|`) and demo_uncovered.csv (`text,tone`)."""
    covered_path, uncovered_path = folder / "demo_covered.csv", folder / "demo_uncovered.csv"
    missing = [p for p in (covered_path, uncovered_path) if not p.is_file()]
    if missing:
        raise CasesMissing(", ".join(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in missing))
    problems: list[str] = []
    covered = []
    for line, row in _rows(covered_path, ("text", "faq_id", "tone")):
        ids = tuple(i.strip() for i in (row["faq_id"] or "").split("|") if i.strip())
        unknown = [i for i in ids if i not in known_ids]
        if not ids or unknown:
            problems.append(f"{covered_path.name}:{line}: unknown or empty faq_id {unknown or row['faq_id']!r}")
            continue
        covered.append(Case(row["text"].strip(), ids, (row["tone"] or "").strip().lower()))
    uncovered = [Case(row["text"].strip(), (), (row["tone"] or "").strip().lower())
                 for _, row in _rows(uncovered_path, ("text", "tone"))]
    if problems:
        raise SystemExit("demo cases have problems:\n  " + "\n  ".join(problems[:20]))
    return covered, uncovered


def demo_extra_cases(folder: Path, known_ids: set[str]) -> tuple[list[Case], list[Case]]:
    """demo_articles.csv (`text,id,tone`: questions the demo's articles answer) and demo_near_miss.csv
    (`text,near,tone`: questions next to a covered topic that nothing answers); empty where absent."""
    articles, near = [], []
    path = folder / "demo_articles.csv"
    if path.is_file():
        for line, row in _rows(path, ("text", "id", "tone")):
            ids = tuple(i.strip() for i in (row["id"] or "").split("|") if i.strip())
            unknown = [i for i in ids if i not in known_ids]
            if not ids or unknown:
                raise SystemExit(f"{path.name}:{line}: unknown or empty id {unknown or row['id']!r}")
            articles.append(Case(row["text"].strip(), ids, (row["tone"] or "").strip().lower()))
    path = folder / "demo_near_miss.csv"
    if path.is_file():
        near = [Case(row["text"].strip(), (), (row["tone"] or "").strip().lower())
                for _, row in _rows(path, ("text", "near", "tone"))]
    return articles, near


def texts_also_in(cases: list[Case], *files: Path) -> list[str]:
    """Case texts (case and spacing folded) that also appear in these CSV files: a tuning or training set should
    not hold test questions."""
    def fold(text: str) -> str:
        return " ".join(text.lower().split())

    seen = set()
    for path in files:
        if path.is_file():
            with path.open(encoding="utf-8", newline="") as f:
                seen |= {fold(r.get("text") or "") for r in csv.DictReader(f)}
    return [c.text for c in cases if fold(c.text) in seen]


def _rows(path: Path, columns: tuple[str, ...]):
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        absent = [c for c in columns if c not in (reader.fieldnames or [])]
        if absent:
            raise SystemExit(f"{path}: missing column(s) {', '.join(absent)} (expected {','.join(columns)})")
        for line, row in enumerate(reader, start=2):
            if (row.get("text") or "").strip():
                yield line, row


# ---------------------------------------------------------------- BANKING77 as a linked FAQ
def banking_faq(linked: bool) -> tuple[list[dict], list[Case]]:
    """77 entries (as bench.faq builds them, alternates drawn from the NLU train split so no dev question is
    an alternate) and the dev split of bench.nlu as covered questions."""
    from bench.faq.run import banking_entry
    from bench.nlu.run import banking_split

    train, dev = banking_split()
    by_intent: dict[str, list[str]] = {}
    for example in train:
        by_intent.setdefault(example.label, []).append(example.text)
    rng = random.Random(SEED)
    records = []
    for intent, texts in sorted(by_intent.items()):
        texts = sorted(texts)
        rng.shuffle(texts)
        record = banking_entry(intent, texts).to_dict()
        record["intents"] = [intent] if linked else []
        records.append({k: v for k, v in record.items() if v or k in ("id", "question", "answer")})
    questions = [Case(e.text, (e.label,)) for e in dev]
    random.Random(SEED).shuffle(questions)  # intents mixed, so a --limit run samples them all
    return records, questions


def write_jsonl(records: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def clinc_out_of_scope(limit: int = OOS_SAMPLE) -> list[Case]:
    """CLINC150's out-of-scope queries, val first (it holds only 100), then train's; seeded order."""
    texts: list[str] = []
    for file in ("val.csv", "train.csv"):
        with (DATA / "clinc150" / file).open(encoding="utf-8", newline="") as f:
            texts += [r["text"].strip() for r in csv.DictReader(f) if r["intent"].strip() == "oos"]
    texts = list(dict.fromkeys(texts))[:limit]
    random.Random(SEED).shuffle(texts)
    return [Case(t) for t in texts]


# ---------------------------------------------------------------- airline tweets
def airline_sets(size: int = TWEETS) -> dict[str, list[Case]]:
    """Seeded samples: the angriest negatives (ANGER_RULE), any negatives, and neutral or positive tweets."""
    from bench.nlu.run import load

    rows = load("airline_sentiment", "train.csv", "sentiment")  # texts carrying two labels dropped
    negative = [e.text for e in rows if e.label == "negative"]
    angriest = [t for t in negative if _angry(t)]
    calm = [e.text for e in rows if e.label in ("neutral", "positive")]
    rng = random.Random(SEED)
    return {name: [Case(t, tone=name) for t in rng.sample(texts, min(size, len(texts)))]
            for name, texts in (("angriest", angriest), ("negative", negative), ("neutral_positive", calm))}


def _angry(text: str) -> bool:
    words = {m.lower() for m in ANGER.findall(text)}
    return bool(words) and ("!" in text or len(words) >= 2)

