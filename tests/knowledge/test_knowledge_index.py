"""Retrieval, the calibrated answer rule, the embedding cache and reload without dropped questions."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from knowledge.service import KnowledgeBase
from tests.support.paths import REPO_ROOT

DEMO = REPO_ROOT / "knowledge" / "demo"


def faq_yaml(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    return path


BASE = [
    {"id": "shipping", "question": "How much does shipping cost?", "answer": "Shipping is $5.95, free over $50.",
     "alternates": ["what are the delivery fees", "is shipping free", "how much is postage"]},
    {"id": "returns", "question": "How do I return an item?", "answer": "Start a return within 30 days.",
     "alternates": ["can i send something back", "what is your return policy", "return a product"]},
    {"id": "password", "question": "How do I reset my password?", "answer": "Use the forgot password link.",
     "alternates": ["i forgot my password", "cannot log in to my account", "change my login password"]},
]


@pytest.mark.slow
def test_demo_faq_answers_paraphrases_and_declines_unrelated(embedder, tmp_path):
    kb = KnowledgeBase(DEMO, embedder=embedder, cache_dir=tmp_path / "cache")
    assert kb.reload().ok
    thresholds = kb.index.thresholds
    assert thresholds.method.startswith("calibrated for <= 5% wrong answers on dev-questions.csv")
    assert thresholds.measured["wrong_rate"] <= 0.05
    decision = kb.answer("how much do you charge for delivery to canada")
    assert decision.kind in ("answer", "suggest")
    assert decision.best.id in {"international-shipping", "shipping-costs"}
    assert kb.answer("i forgot my password and can't sign in").best.id in {"reset-password", "account-locked"}
    assert kb.answer("who won the world cup in 1998").kind == "none"


def test_cache_re_embeds_only_changed_entries(embedder, tmp_path):
    source = faq_yaml(tmp_path / "faq.yaml", BASE)
    kb = KnowledgeBase(source, embedder=embedder, cache_dir=tmp_path / "cache")
    first = kb.reload()
    assert first.ok and first.embedded_texts == 12  # 3 entries x (question + 3 alternates); answers are not embedded
    changed = [dict(e) for e in BASE]
    changed[1]["question"] = "How do I return an item I bought?"
    faq_yaml(source, changed)
    second = kb.reload()
    assert second.ok and second.changed and second.embedded_texts == 1
    # A new process with the same cache folder embeds nothing at all.
    fresh = KnowledgeBase(source, embedder=embedder, cache_dir=tmp_path / "cache")
    assert fresh.reload().embedded_texts == 0
    assert fresh.index.version.content_hash == kb.index.version.content_hash


def test_broken_source_keeps_the_old_index_and_lists_every_error(embedder, tmp_path):
    source = faq_yaml(tmp_path / "faq.yaml", BASE)
    kb = KnowledgeBase(source, embedder=embedder)
    assert kb.reload().ok
    before = kb.index.version.content_hash
    source.write_text(yaml.safe_dump([*BASE, {"id": "shipping", "question": "", "answer": ""}]), encoding="utf-8")
    result = kb.reload()
    assert not result.ok and not result.changed
    assert {e.message.split(" (")[0] for e in result.errors} == {
        "empty or missing question", "missing answer", "duplicate id 'shipping'"}
    assert all(e.source == str(source) and e.line > 1 for e in result.errors)
    assert kb.index.version.content_hash == before
    assert kb.answer("is delivery free").best.id == "shipping"


def test_queries_during_reload_see_old_or_new_never_an_error(embedder, tmp_path):
    old = [dict(e) for e in BASE]
    new = [dict(e) for e in BASE]
    new[0] = {**new[0], "id": "shipping-v2", "answer": "Shipping is now free on everything."}
    source = faq_yaml(tmp_path / "faq.yaml", old)
    kb = KnowledgeBase(source, embedder=embedder)
    kb.reload()
    old_version = kb.index.version.short
    expected = {old_version: "shipping"}
    stop = threading.Event()
    reloading = threading.Event()
    asked_while_reloading = threading.Event()
    seen: list[tuple[str, str]] = []
    during_reload: list[bool] = []
    errors: list[BaseException] = []

    def ask() -> None:
        while not stop.is_set():
            try:
                started_in_reload = reloading.is_set()
                if started_in_reload:
                    asked_while_reloading.set()
                d = kb.answer("how much is shipping")
                seen.append((d.version, d.best.id))
                during_reload.append(started_in_reload or reloading.is_set())
            except BaseException as exc:  # any error at all fails the test
                errors.append(exc)

    def wait_for_more_queries(n: int) -> None:
        target = len(seen) + n
        deadline = time.monotonic() + 60
        while len(seen) < target and time.monotonic() < deadline:
            time.sleep(0.01)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(4):
        wait_for_more_queries(3)  # queries before, during and after every reload, however slow the machine
        faq_yaml(source, new if i % 2 == 0 else old)
        asked_while_reloading.clear()
        reloading.set()
        asked_while_reloading.wait(30)  # a question is in flight as the reload starts, however fast the machine
        result = kb.reload()
        reloading.clear()
        assert result.ok
        expected[kb.index.version.short] = "shipping-v2" if i % 2 == 0 else "shipping"
    wait_for_more_queries(3)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert len(seen) >= 15 and any(during_reload)
    assert {version for version, _ in seen} <= set(expected)
    for version, entry_id in seen:  # never an old version's answer reported under the new version
        assert expected[version] == entry_id


def test_restore_previous_version(embedder, tmp_path):
    source = faq_yaml(tmp_path / "faq.yaml", BASE)
    kb = KnowledgeBase(source, embedder=embedder)
    kb.reload()
    first = kb.index.version.content_hash
    faq_yaml(source, BASE[:2])
    kb.reload()
    assert kb.index.version.entries == 2
    restored = kb.restore_previous()
    assert restored["content_hash"] == first and kb.index.version.entries == 3


def _list_centroids(index):
    import faiss

    return faiss.downcast_index(index.quantizer).reconstruct_n(0, index.nlist)


def test_a_reload_above_the_exact_limit_reuses_the_trained_lists(embedder, tmp_path, monkeypatch):
    import numpy as np

    import knowledge.index

    monkeypatch.setattr(knowledge.index, "EXACT_LIMIT", 10)  # 15 texts: approximate search
    # One more phrasing per entry: answers are not embedded, and IVF needs as many vectors as its 4·sqrt(n) lists.
    base = [{**e, "alternates": [*e["alternates"], f"{e['question']} please"]} for e in BASE]
    source = faq_yaml(tmp_path / "faq.yaml", base)
    kb = KnowledgeBase(source, embedder=embedder, cache_dir=tmp_path / "cache")
    assert kb.reload().ok
    first = kb.index
    assert first.version.index_type.startswith("ivf")
    changed = [dict(e) for e in base]
    changed[2]["alternates"] = [*base[2]["alternates"], "locked out of the app after too many tries"]
    faq_yaml(source, changed)
    assert kb.reload().changed
    assert np.array_equal(_list_centroids(kb.index.faiss), _list_centroids(first.faiss))  # not retrained
    assert kb.search(["locked out of the app after too many tries"])[0][0].id == "password"
    assert kb.restore_previous()["version"] == first.version.short  # the old one still serves untouched


def test_ivf_lists_are_retrained_when_the_base_outgrows_them():
    import numpy as np

    from knowledge.index import build_ivf, ivf_lists

    rng = np.random.default_rng(0)

    def unit(n: int) -> np.ndarray:
        v = rng.normal(size=(n, 32)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    base = unit(2000)
    first, _ = build_ivf(base)
    edited = base.copy()
    edited[:10] = unit(10)
    again, _ = build_ivf(edited, previous=first)
    assert again.nlist == first.nlist and np.array_equal(_list_centroids(again), _list_centroids(first))
    _, found = again.search(edited[:10], 1)
    assert (found[:, 0] == np.arange(10)).all()  # the changed vectors are where a search finds them
    grown, _ = build_ivf(np.concatenate([base, unit(8000)]), previous=first)
    assert grown.nlist == ivf_lists(10_000) > 2 * first.nlist  # too few lists for 5x the vectors: retrained


def test_an_ivf_index_of_fewer_vectors_than_lists_still_builds_and_finds_them():
    import numpy as np

    from knowledge.index import build_ivf

    vectors = np.eye(8, 32, dtype=np.float32)  # 4·sqrt(8) = 11 lists would be more than the 8 vectors
    index, _ = build_ivf(vectors)
    assert index.nlist <= 8
    index.nprobe = index.nlist
    _, found = index.search(vectors, 1)
    assert (found[:, 0] == np.arange(8)).all()
