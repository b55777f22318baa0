"""Building an index from entries: embed (through the cache), learn, calibrate the answer rule.

The answer thresholds come from the knowledge base itself. Each question or alternate is
used as a query against the index without that one text (a *positive*: the right entry is
still there, reachable through its other phrasings) and against the index without its
whole entry (a *negative*: the right answer is absent, so whatever comes back is wrong).
The answer threshold is the lowest score at which answers are right at least
`ANSWER_PRECISION` of the time; the suggestion threshold best separates "the right entry
is among the top three" from "there is no right entry".
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from knowledge.embedder import EmbeddingCache
from knowledge.index import TEXT_WEIGHTS, AnswerThresholds, FaqIndex, RetrievalConfig, entry_texts
from knowledge.sources import FaqEntry

ANSWER_PRECISION = 0.9
MIN_CALIBRATION_QUERIES = 20
MAX_CALIBRATION_QUERIES = 400


@dataclass
class CalibrationSample:
    positive_scores: np.ndarray  # top score when the right entry is reachable
    positive_correct: np.ndarray  # top hit is the right entry
    positive_in_top3: np.ndarray
    negative_scores: np.ndarray  # top score when the right entry is absent


def calibration_sample(index: FaqIndex, base_vectors: np.ndarray, seed: int = 0) -> CalibrationSample:
    texts, owners, weights = entry_texts(index.entries)
    rows_of: dict[int, set[int]] = {}
    for row, owner in enumerate(owners):
        rows_of.setdefault(int(owner), set()).add(row)
    # Queries: questions and alternates of entries with at least one other phrasing.
    candidates = [r for r in range(len(texts)) if weights[r] != TEXT_WEIGHTS["answer"]
                  and sum(weights[x] != TEXT_WEIGHTS["answer"] for x in rows_of[int(owners[r])]) >= 2]
    random.Random(seed).shuffle(candidates)
    rows = candidates[:MAX_CALIBRATION_QUERIES]
    queries = [texts[r] for r in rows]
    vectors = base_vectors[rows]
    positives = index.search_vectors(vectors, queries, top_k=3, exclude_rows=[{r} for r in rows])
    negatives = index.search_vectors(vectors, queries, top_k=1,
                                     exclude_rows=[rows_of[int(owners[r])] for r in rows])
    target = [index.entries[int(owners[r])].id for r in rows]
    return CalibrationSample(
        positive_scores=np.array([h[0].score if h else -1.0 for h in positives]),
        positive_correct=np.array([bool(h) and h[0].id == t for h, t in zip(positives, target, strict=True)]),
        positive_in_top3=np.array([any(x.id == t for x in h) for h, t in zip(positives, target, strict=True)]),
        negative_scores=np.array([h[0].score if h else -1.0 for h in negatives]),
    )


def calibrate_thresholds(sample: CalibrationSample) -> AnswerThresholds:
    if len(sample.positive_scores) < MIN_CALIBRATION_QUERIES:
        return AnswerThresholds(method=f"default (fewer than {MIN_CALIBRATION_QUERIES} alternates to calibrate on)")
    candidates = np.unique(np.concatenate([sample.positive_scores, sample.negative_scores]))
    answer = float(candidates.max()) + 1e-3  # never answer outright unless some threshold is precise enough
    for t in candidates:  # ascending: the lowest threshold that is precise enough answers the most
        right = np.sum(sample.positive_correct & (sample.positive_scores >= t))
        wrong = np.sum(~sample.positive_correct & (sample.positive_scores >= t)) + np.sum(sample.negative_scores >= t)
        if right + wrong and right / (right + wrong) >= ANSWER_PRECISION:
            answer = float(t)
            break
    useful = sample.positive_in_top3
    best_j, suggest = -np.inf, answer
    for t in candidates[candidates <= answer]:
        j = np.mean(useful & (sample.positive_scores >= t)) - np.mean(sample.negative_scores >= t)
        if j > best_j:
            best_j, suggest = j, float(t)
    return AnswerThresholds(answer=round(answer, 4), suggest=round(min(suggest, answer), 4),
                            method=f"leave-one-out on {len(sample.positive_scores)} alternates "
                                   f"(answer precision >= {ANSWER_PRECISION:.0%})")


def build_index(entries: list[FaqEntry], cache: EmbeddingCache, config: RetrievalConfig | None = None,
                previous: FaqIndex | None = None) -> tuple[FaqIndex, np.ndarray]:
    """Embed (reusing cached vectors), build, and calibrate; returns the index and its base vectors.

    `previous`, the version this one replaces, lends its trained approximate-search lists.
    """
    texts, _, _ = entry_texts(entries)
    base_vectors = cache.encode(texts)
    index = FaqIndex(entries, base_vectors, config or RetrievalConfig(), previous=previous)
    index.thresholds = calibrate_thresholds(calibration_sample(index, base_vectors))
    return index, base_vectors
