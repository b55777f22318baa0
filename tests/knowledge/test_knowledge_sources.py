"""Every source format loads; every problem is reported with file and line, all at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge.sources import KnowledgeBaseError, load_entries
from tests.support.paths import REPO_ROOT

YAML = """\
- id: shipping-cost
  question: How much is shipping?
  answer: Standard shipping is $5.95, free over $50.
  alternates: [what does delivery cost, is shipping free]
  tags: [shipping]
"""
CSV = """\
id,question,answer,alternates,tags
returns,How do I return an item?,Start a return within 30 days at /returns.,send it back|return policy,returns
"""
MARKDOWN = """\
# Store FAQ

## Do you ship to Canada?
id: ship-canada
alternates: canada shipping | can i order from toronto
tags: shipping, international

Yes: 7-14 business days, $19.95.

## How do I reset my password?

Use "Forgot password" on the sign-in page.
"""
JSONL = json.dumps({"id": "gift-cards", "question": "Do you sell gift cards?", "answer": "Yes, from $25.",
                    "alternates": ["gift voucher"]}) + "\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_each_format_loads_from_a_folder(tmp_path):
    write(tmp_path, "a.yaml", YAML)
    write(tmp_path, "b.csv", CSV)
    write(tmp_path, "c.md", MARKDOWN)
    write(tmp_path, "d.jsonl", JSONL)
    entries = {e.id: e for e in load_entries(tmp_path)}
    assert set(entries) == {"shipping-cost", "returns", "ship-canada", "how-do-i-reset-my-password", "gift-cards"}
    assert entries["shipping-cost"].alternates == ("what does delivery cost", "is shipping free")
    assert entries["returns"].alternates == ("send it back", "return policy")
    assert entries["ship-canada"].tags == ("shipping", "international")
    assert entries["ship-canada"].answer == "Yes: 7-14 business days, $19.95."
    assert entries["how-do-i-reset-my-password"].answer.startswith('Use "Forgot password"')
    assert entries["gift-cards"].alternates == ("gift voucher",)
    assert entries["ship-canada"].line == 3 and entries["shipping-cost"].line == 1


def test_single_file_source(tmp_path):
    (entry,) = load_entries(write(tmp_path, "faq.jsonl", JSONL))
    assert entry.question == "Do you sell gift cards?"


def test_all_problems_reported_with_file_and_line(tmp_path):
    yaml_file = write(tmp_path, "a.yaml", YAML + """\
- id: no-answer
  question: Where is my refund?
- id: shipping-cost
  question: Duplicate id here
  answer: Something.
- id: blank-question
  question: "   "
  answer: An answer.
""")
    bad_row = json.dumps({"question": "q", "answer": ""})
    jsonl_file = write(tmp_path, "b.jsonl", JSONL + "{broken json\n" + bad_row + "\n")
    with pytest.raises(KnowledgeBaseError) as info:
        load_entries(tmp_path)
    found = {(p.source, p.line, p.message.split(" (")[0]) for p in info.value.problems}
    assert (str(yaml_file), 6, "missing answer") in found
    assert (str(yaml_file), 8, "duplicate id 'shipping-cost'") in found
    assert (str(yaml_file), 11, "empty or missing question") in found
    assert any(p.source == str(jsonl_file) and p.line == 2 and "invalid JSON" in p.message
               for p in info.value.problems)
    assert (str(jsonl_file), 3, "missing answer") in found
    assert len(info.value.problems) == 5


def test_invalid_yaml_and_wrong_types(tmp_path):
    write(tmp_path, "bad.yaml", "- id: x\n  question: [unclosed\n")
    write(tmp_path, "types.yaml", "- question: ok?\n  answer: fine\n  alternates: {a: 1}\n  colour: red\n")
    with pytest.raises(KnowledgeBaseError) as info:
        load_entries(tmp_path)
    messages = [str(p) for p in info.value.problems]
    assert any("bad.yaml" in m and "invalid YAML" in m for m in messages)
    assert any("types.yaml:1: 'alternates' must be a list of strings" in m for m in messages)
    assert any("types.yaml:1: unknown field(s): colour" in m for m in messages)


def test_missing_source_and_empty_folder(tmp_path):
    with pytest.raises(KnowledgeBaseError, match="no such file or folder"):
        load_entries(tmp_path / "nope")
    with pytest.raises(KnowledgeBaseError, match="files found"):
        load_entries(tmp_path)


def test_demo_faq_is_valid_and_rich():
    entries = load_entries(REPO_ROOT / "knowledge" / "demo")
    assert len(entries) >= 40
    assert all(len(e.alternates) >= 3 for e in entries)
