"""Calibration questions: what the answer rule's bars are chosen on (`knowledge.calibration`).

Their own module because the index keeps the questions it was calibrated on (`FaqIndex.calibration`)
while calibration searches the index: both import this, and neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    text: str
    expected: frozenset[str]  # entry ids that answer it; empty: the FAQ does not cover it
    exclude_rows: frozenset[int] = frozenset()  # index rows hidden while asking (generated questions)
    tone: str = ""
    near_miss: bool = False  # uncovered, but on a topic next to what the knowledge base covers


@dataclass
class QuestionSet:
    questions: list[Question]
    origin: str  # where they came from, for the thresholds' `method`

    @property
    def covered(self) -> int:
        return sum(bool(q.expected) for q in self.questions)
