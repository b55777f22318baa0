"""The default scores like the plain encoder unless the FAQ's own alternates prove a centroid blend helps.

Hand-made vectors stand in for sentence embeddings: what is tested is the scoring, not the encoder.
"""

from __future__ import annotations

import json

import numpy as np

from knowledge.blending import MIN_HELD_OUT, BlendReason, held_out_alternates
from knowledge.index import FaqIndex, RetrievalConfig, embedded_rows
from knowledge.records import FaqEntry

DIM = 8


def unit(*parts: tuple[int, float]) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    for axis, value in parts:
        vector[axis] = value
    return vector / np.linalg.norm(vector)


def varied_and_single() -> tuple[list[FaqEntry], np.ndarray, np.ndarray]:
    """'varied' has four phrasings spread around axis 0 (each at cosine 0.8 to it, their mean exactly on it);
    'single' has one phrasing at cosine 0.85 to axis 0. The query is axis 0 itself."""
    entries = [FaqEntry("varied", "q0", "a", ("q1", "q2", "q3")), FaqEntry("single", "q4", "b")]
    spread = 0.75  # cos = 1 / sqrt(1 + 0.75²) = 0.8
    vectors = np.stack([unit((0, 1), (1, spread)), unit((0, 1), (1, -spread)), unit((0, 1), (2, spread)),
                        unit((0, 1), (2, -spread)), unit((0, 0.85), (3, float(np.sqrt(1 - 0.85 ** 2))))])
    return entries, vectors, unit((0, 1))[None, :]


def ranking(index: FaqIndex, query: np.ndarray) -> list[str]:
    return [hit.id for hit in index.search_vectors(query, ["query"], top_k=2)[0]]


def test_a_fixed_blend_lifts_varied_phrasings_over_the_closest_one_and_the_default_does_not():
    """How the old default (a fixed blend of 0.5) lost to the plain encoder: the normalised mean of varied phrasings
    is closer to the query (cosine 1.0) than any phrasing is (0.8), so the entry with alternates scores
    0.5 x 0.8 + 0.5 x 1.0 = 0.9 and passes the entry whose one phrasing is closest (0.85)."""
    entries, vectors, query = varied_and_single()
    plain = FaqIndex(entries, vectors, RetrievalConfig(centroid_weight=0.0))
    fixed = FaqIndex(entries, vectors, RetrievalConfig(centroid_weight=0.5))
    default = FaqIndex(entries, vectors, RetrievalConfig())
    assert ranking(plain, query) == ["single", "varied"]
    assert ranking(fixed, query) == ["varied", "single"]
    assert ranking(default, query) == ranking(plain, query)
    assert default.centroid_weight == 0.0 and default.blend.reason == BlendReason.TOO_FEW  # 3 alternates prove nothing
    scores = {hit.id: hit.score for hit in default.search_vectors(query, ["query"], top_k=2)[0]}
    assert scores == {"single": 0.85, "varied": 0.8}  # the best cosine over question and alternates, nothing else


def noisy_faq(noise: float, entries: int = 30, phrasings: int = 4, seed: int = 0) -> tuple[list[FaqEntry], np.ndarray]:
    """Entries whose phrasings are their own random centre plus noise, in 64 dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((entries, 64))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    faq, rows = [], []
    for e in range(entries):
        texts = [f"entry {e} phrasing {p}" for p in range(phrasings)]
        faq.append(FaqEntry(f"e{e}", texts[0], "answer", tuple(texts[1:])))
        for _ in texts:
            rows.append(centres[e] + noise * rng.standard_normal(64) / np.sqrt(64))
    vectors = np.asarray(rows, dtype=np.float32)
    return faq, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_alternates_that_prove_a_blend_switch_it_on_and_a_reload_keeps_it(tmp_path):
    """Noisy paraphrases: their mean finds the entry that no single one of them does, as on BANKING77-as-FAQ."""
    entries, vectors = noisy_faq(noise=1.6)
    index = FaqIndex(entries, vectors, RetrievalConfig())
    blend = index.blend
    assert blend.reason == BlendReason.PROVEN and blend.weight > 0
    assert blend.held_out == 90 and blend.wins > blend.losses
    assert blend.p_at_1[f"{blend.weight:g}"] > blend.p_at_1["0"]
    index.save(tmp_path / "index", vectors)
    assert json.loads((tmp_path / "index" / "index.json").read_text())["blend"]["weight"] == blend.weight
    assert FaqIndex.load(tmp_path / "index").centroid_weight == blend.weight


def test_alternates_that_prove_nothing_leave_the_plain_score():
    entries, vectors = noisy_faq(noise=0.3)  # every phrasing finds its own entry: a blend has nothing to win
    index = FaqIndex(entries, vectors, RetrievalConfig())
    assert index.blend.reason == BlendReason.NOT_PROVEN and index.centroid_weight == 0.0
    assert index.blend.held_out >= MIN_HELD_OUT and index.blend.wins == 0
    no_alternates = [FaqEntry(e.id, e.question, e.answer) for e in entries]
    first_rows = vectors[::4]
    assert FaqIndex(no_alternates, first_rows, RetrievalConfig()).blend.reason == BlendReason.TOO_FEW


def test_a_fixed_blend_in_the_config_is_used_as_given():
    entries, vectors = noisy_faq(noise=0.3)
    index = FaqIndex(entries, vectors, RetrievalConfig(centroid_weight=0.5))
    assert index.centroid_weight == 0.5 and index.blend.reason == BlendReason.SET and index.blend.held_out == 0


def test_held_out_alternates_hide_shared_texts_and_count_the_same_question_answered_twice_as_right():
    entries = [FaqEntry("a1", "How do I pay?", "Card.", ("paying", "payment options")),
               FaqEntry("a2", "How do I pay?", "Cash.", ("paying",)),
               FaqEntry("b", "Where is my order?", "Track it.", ("order status", "How do I pay?"))]
    rows = embedded_rows(entries)
    cases = {rows[asked][2]: (hidden, right) for asked, hidden, right in held_out_alternates(entries, rows)}
    # b's alternate "How do I pay?" is another entry's question: hiding it would hide that question, so it is not asked.
    assert set(cases) == {"paying", "payment options", "order status"}
    hidden, right = cases["paying"]
    assert {rows[r][2] for r in hidden} == {"paying"} and len(hidden) == 2  # both entries' copies hidden
    assert right == {0, 1}  # either entry asked "How do I pay?" answers it
    assert cases["order status"][1] == {2}
