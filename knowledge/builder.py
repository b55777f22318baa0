"""Building an index from entries: embed (through the cache), learn, calibrate the answer rule.

The answer rule's bars are chosen for outcomes on customers' questions (see
`knowledge.calibration`): the company's development set where it has one, generated
paraphrases where it does not, and with the intent model's predictions where a model is
at hand, since the rule combines both signals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knowledge.calibration import (
    DEFAULT_TARGET,
    MIN_COVERED,
    Classifier,
    calibrate,
    collect_cases,
    load_questions,
)
from knowledge.embedder import EmbeddingCache
from knowledge.generation import generated_set, supplemented
from knowledge.index import FaqIndex, RetrievalConfig, entry_texts
from knowledge.questions import QuestionSet
from knowledge.records import FaqEntry


def build_index(entries: list[FaqEntry], cache: EmbeddingCache, config: RetrievalConfig | None = None,
                previous: FaqIndex | None = None, *, questions: str | Path | QuestionSet | None = None,
                classify: Classifier | None = None, target: float = DEFAULT_TARGET,
                question_cache: EmbeddingCache | None = None) -> tuple[FaqIndex, np.ndarray]:
    """Embed (reusing cached vectors), build, and calibrate; returns the index and its base vectors.

    `previous`, the version this one replaces, lends its trained approximate-search lists.
    `questions`: the development set (a CSV path, already read, or None to generate one);
    a bad file raises `KnowledgeBaseError` before anything is built. `classify`: the intent
    model, or None to calibrate retrieval alone. `question_cache`: what the calibration questions are embedded
    through, as customers' questions are (a query encoder's; default `cache`).
    """
    if questions is None:
        question_set = generated_set(entries)
    elif isinstance(questions, QuestionSet):
        question_set = questions
    else:
        question_set = supplemented(load_questions(questions, entries), entries)
    texts, _, _ = entry_texts(entries)
    base_vectors = cache.encode(texts)
    index = FaqIndex(entries, base_vectors, config or RetrievalConfig(), previous=previous)
    # Tone-labelled questions are asked even when too few to choose bars from: the escalation line is
    # calibrated on what the model said about them (see `FaqIndex.calibration`).
    if question_set.covered >= MIN_COVERED or any(q.tone for q in question_set.questions):
        # Only a model whose intents the entries name is asked: its signal counts nowhere else (`KnowledgeBase.answer`).
        cases = collect_cases(index, question_set, (question_cache or cache).encode,
                              classify if index.linked_intents else None)
        index.calibration = [(q, case.signal) for q, case in zip(question_set.questions, cases, strict=True)]
    else:  # too few to choose from: say so, and spend no time embedding them
        cases = []
    index.thresholds = calibrate(cases, question_set.origin, target)
    return index, base_vectors

