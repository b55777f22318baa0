"""The demo store's data agree with each other: FAQ intent links, intent examples, the calibration set.

Pure file checks (no model): every intent an FAQ entry names exists in nlu/demo/intents.csv, every
non-small-talk intent has an answer (linked entries, a fixed template answer, or escalation), and the
calibration questions (knowledge/demo/dev-questions.csv) name real entries and never repeat a text the FAQ
or the intent model was built from.
"""

from __future__ import annotations

import csv
import re

from bot.templates import Templates
from knowledge.loading import load_knowledge
from knowledge.sources import load_entries
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
FAQ = ROOT / "knowledge" / "demo" / "faq.yaml"
INTENTS = ROOT / "nlu" / "demo" / "intents.csv"
QUESTIONS = ROOT / "knowledge" / "demo" / "dev-questions.csv"  # the loader never reads it as entries
SMALL_TALK = {"greet", "thanks", "goodbye", "bot_capabilities"}
ESCALATION = {"human_agent", "complaint"}
TONES = {"calm", "impatient", "angry"}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9$#%]+", " ", text.lower()).split())


def _intent_rows() -> list[dict]:
    with INTENTS.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _question_rows() -> list[dict]:
    with QUESTIONS.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_faq_intent_links_name_real_intents_and_cover_every_intent():
    entries = load_entries(FAQ)
    labels = {row["intent"] for row in _intent_rows()}
    linked = {intent for e in entries for intent in e.intents}
    assert linked <= labels - {"oos"} - SMALL_TALK - ESCALATION, linked - labels
    # The demo's fixed answers: the bot's defaults, with the demo folder's own wording over them.
    fixed = set(Templates.over_defaults(load_knowledge(FAQ.parent).wording).data.get("intents") or {})
    unanswered = labels - {"oos"} - SMALL_TALK - ESCALATION - fixed - linked
    assert not unanswered, f"intents with no FAQ entry, fixed answer or escalation: {sorted(unanswered)}"
    assert all(len(e.alternates) >= 5 for e in entries)


def test_calibration_questions_are_valid_and_unseen():
    ids = {e.id for e in load_entries(FAQ)}
    answer_ids = {e.answer_id for e in load_knowledge(FAQ.parent).entries}  # FAQ entries and the demo's articles
    seen = {_norm(t) for e in load_entries(FAQ) for t in (e.question, *e.alternates)}
    seen |= {_norm(row["text"]) for row in _intent_rows()}
    rows = _question_rows()
    texts = [_norm(row["text"]) for row in rows]
    assert len(texts) == len(set(texts)), "duplicate calibration questions"
    assert not [row["text"] for row in rows if _norm(row["text"]) in seen]
    assert {row["tone"] for row in rows} <= TONES
    covered = [row for row in rows if row["faq_id"]]
    for row in covered:
        assert set(row["faq_id"].split("|")) <= answer_ids, row
    per_entry = {i: sum(i in row["faq_id"].split("|") for row in covered) for i in ids}
    assert min(per_entry.values()) >= 2, [i for i, n in per_entry.items() if n < 2]
    assert len(covered) >= 160 and len(rows) - len(covered) >= 60
    assert sum(row["tone"] == "angry" for row in rows) >= 30
