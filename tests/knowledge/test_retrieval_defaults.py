"""The retrieval defaults chosen by cross-validation (bench.faq.cv) are what the product builds and serves.

Answers are not embedded by default (issue 17): a customer's words that happen to match an answer's
text must not pull that entry ahead of the entry whose question they ask.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import knowledge.index as kindex
from knowledge.embedder import EmbeddingCache
from knowledge.index import FaqIndex, RetrievalConfig, entry_texts
from knowledge.service import KnowledgeBase
from knowledge.sources import load_entries

# The query is the words of the "password" entry's answer; "dispatch" is the entry whose question it asks.
ANSWER = "Parcels leave our warehouse every weekday morning by courier."
QUERY = "parcels leave warehouse weekday morning courier"
FAQ = [
    {"id": "password", "question": "How do I reset my password?", "answer": ANSWER,
     "alternates": ["i forgot my password", "cannot log in"]},
    {"id": "dispatch", "question": "When do you ship orders?", "answer": "Monday to Friday.",
     "alternates": ["what days do you send orders out", "which days is shipping done"]},
    {"id": "returns", "question": "How do I return an item?", "answer": "Start a return within 30 days.",
     "alternates": ["can i send something back", "what is your return policy"]},
]


def write_faq(folder: Path) -> Path:
    path = folder / "faq.yaml"
    path.write_text(yaml.safe_dump(FAQ, sort_keys=False), encoding="utf-8")
    return path


def test_the_served_index_embeds_questions_and_alternates_not_answers(embedder, tmp_path):
    kb = KnowledgeBase(write_faq(tmp_path), embedder=embedder, cache_dir=tmp_path / "cache")
    result = kb.reload()
    assert result.ok
    assert kindex.TEXT_WEIGHTS["answer"] == 0.0
    assert kb.index.config == RetrievalConfig()
    # 3 entries x (question + 2 alternates): no answer text was sent through the encoder.
    assert result.embedded_texts == 9 and len(kb.index.vectors) == 9
    texts, owners, _ = entry_texts(kb.index.entries)
    assert ANSWER not in texts and sorted(set(owners.tolist())) == [0, 1, 2]
    hits = kb.index.search_vectors(embedder.encode([QUERY]), [QUERY], top_k=3)[0]
    assert hits[0].id == "dispatch"


def test_with_answers_embedded_the_answer_text_pulls_its_entry_ahead(embedder, tmp_path, monkeypatch):
    """The same FAQ and query under the previous default: what switching answers off changed."""
    monkeypatch.setitem(kindex.TEXT_WEIGHTS, "answer", 0.85)
    entries = load_entries(write_faq(tmp_path))
    texts, _, _ = entry_texts(entries)
    assert ANSWER in texts and len(texts) == 12
    index = FaqIndex(entries, EmbeddingCache(embedder).encode(texts), RetrievalConfig())
    hits = index.search_vectors(embedder.encode([QUERY]), [QUERY], top_k=3)[0]
    assert hits[0].id == "password"


def test_an_index_saved_with_answers_embedded_loads_and_searches_as_built_now(embedder, tmp_path, monkeypatch):
    entries = load_entries(write_faq(tmp_path))
    cache = EmbeddingCache(embedder)
    with monkeypatch.context() as m:  # an index written before issue 17: answers embedded, weights not recorded
        m.setitem(kindex.TEXT_WEIGHTS, "answer", 0.85)
        texts, _, _ = entry_texts(entries)
        old = FaqIndex(entries, cache.encode(texts), RetrievalConfig())
        old.save(tmp_path / "old", cache.encode(texts))
    meta = json.loads((tmp_path / "old" / "index.json").read_text())
    assert meta.pop("text_weights") == {"question": 1.0, "alternate": 1.0, "answer": 0.85, "passage": 1.0,
                                        "sentence": 1.0}
    (tmp_path / "old" / "index.json").write_text(json.dumps(meta))

    loaded = FaqIndex.load(tmp_path / "old")
    texts, _, _ = entry_texts(entries)
    fresh = FaqIndex(entries, cache.encode(texts), RetrievalConfig())
    assert len(loaded.vectors) == len(fresh.vectors) == 9
    assert np.allclose(loaded.vectors, fresh.vectors)
    query = embedder.encode([QUERY, "what days do orders go out"])
    assert ([[h.id for h in row] for row in loaded.search_vectors(query, [QUERY, "orders"], top_k=3)]
            == [[h.id for h in row] for row in fresh.search_vectors(query, [QUERY, "orders"], top_k=3)])


def test_an_index_missing_a_kind_now_embedded_asks_to_be_built_again(embedder, tmp_path, monkeypatch):
    entries = load_entries(write_faq(tmp_path))
    cache = EmbeddingCache(embedder)
    texts, _, _ = entry_texts(entries)
    FaqIndex(entries, cache.encode(texts), RetrievalConfig()).save(tmp_path / "new", cache.encode(texts))
    monkeypatch.setitem(kindex.TEXT_WEIGHTS, "answer", 0.85)  # a later release that embeds answers again
    with pytest.raises(ValueError, match=r"kinds missing: \['answer'\].*faq build"):
        FaqIndex.load(tmp_path / "new")
