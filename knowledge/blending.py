"""Whether FAQ entries score by their best phrasing alone or blended with their centroid, per knowledge base.

Rule: an entry scores by its best-matching phrasing (question or alternate), exactly as the plain encoder ranks
it, unless the knowledge base's own alternates prove that blending in the similarity to the entry's centroid
(the normalised mean of its phrasings) ranks their entries first more often. Each distinct alternate of an FAQ
entry (a seeded sample of at most HELD_OUT_LIMIT) is asked as a question with its own rows hidden and left out
of its entry's centroid; the blend weight of BLEND_WEIGHTS that ranks the most of them first is adopted only when
it wins clearly more of them than it loses against the plain score (a one-sided sign test at z >= SIGN_Z, at
least MIN_NET more wins than losses) and its MRR@10 is not lower. Fewer than MIN_HELD_OUT alternates prove
nothing: the plain score.

Why not a fixed blend: the normalised centroid of several phrasings sits closer to a typical paraphrase than any
one of them does, so the blend lifts entries with many, varied phrasings over entries with few, whatever the
query. Where customers word things as the alternates do (BANKING77 as an FAQ, three alternates an entry) that is
what finds the right entry; where the alternates say little the questions do not (StackFAQ threads), it pulls a
wrong entry ahead about as often as a right one: with three alternates an entry, the fixed blend of 0.5 that
shipped before fell below the plain encoder on 2 of 5 folds of held-out threads, this rule on none
(`python -m bench.faq --parts stackfaq-cv`, docs/BENCHMARKS.md). The held-out alternates are part of the FAQ,
not customers' questions: nothing about the queries a knowledge base will serve is used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np

from knowledge.records import FaqEntry

BLEND_WEIGHTS = (0.25, 0.5, 0.75)
HELD_OUT_LIMIT = 250  # alternates asked per build: at most 250 more searches (about 0.5 s on a 10k-entry FAQ, 2 cores)
MIN_HELD_OUT = 20
SIGN_Z = 1.645  # one-sided 5 %
MIN_NET = 3
SEED = 0
DEPTH = 10  # MRR@10


class BlendReason(StrEnum):
    SET = "set in RetrievalConfig"
    TOO_FEW = "too few alternates to prove a blend"
    NOT_PROVEN = "the alternates did not prove a blend"
    PROVEN = "the alternates proved a blend"


@dataclass(frozen=True)
class BlendChoice:
    """The centroid weight an index scores with, and the leave-one-out evidence it was chosen on."""

    weight: float
    reason: BlendReason
    held_out: int = 0  # alternates asked
    wins: int = 0  # ranked first by the chosen (or best) blend, not by the plain score
    losses: int = 0  # the other way round
    p_at_1: dict[str, float] = field(default_factory=dict)  # per weight ("0" is the plain score)
    mrr_at_10: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**asdict(self), "reason": str(self.reason)}


class Scoring(Protocol):
    """What choosing needs of an index (`knowledge.index.FaqIndex`)."""

    entries: list[FaqEntry]
    vectors: np.ndarray  # one row per embedded text, in the index's space

    def dense_scores(self, mapped: np.ndarray, top_k: int, exclude_rows: list[set[int]] | None
                     ) -> list[dict[int, float]]: ...

    def blend_scores(self, best: dict[int, float], query: np.ndarray, weight: float, skip=()) -> dict[int, float]: ...


def held_out_alternates(entries: list[FaqEntry], rows: list[tuple[int, str, str]]
                        ) -> list[tuple[int, set[int], frozenset[int]]]:
    """(row asked, rows hidden, entries that count as right) for each distinct alternate of an FAQ entry.

    Every row with the same text is hidden (two entries may share an alternate), and an entry asked the same way
    as the alternate's own (the same question answered twice) counts as right: neither says anything about blending.
    """
    rows_of: dict[str, list[int]] = {}
    for r, (i, _, text) in enumerate(rows):
        if entries[i].article is None:
            rows_of.setdefault(text, []).append(r)
    same_question: dict[str, set[int]] = {}
    for i, entry in enumerate(entries):
        if entry.article is None:
            same_question.setdefault(entry.question.casefold().strip(), set()).add(i)
    out, seen = [], set()
    for r, (i, kind, text) in enumerate(rows):
        if kind != "alternate" or text in seen or entries[i].article is not None:
            continue
        seen.add(text)
        hidden = rows_of[text]
        owners = {rows[x][0] for x in hidden}
        if any(entries[o].question == text for o in owners):
            continue  # an alternate that repeats a question: hiding it would hide that question too
        right = frozenset().union(*(same_question[entries[o].question.casefold().strip()] for o in owners))
        out.append((r, set(hidden), right))
    if len(out) > HELD_OUT_LIMIT:
        keep = np.sort(np.random.default_rng(SEED).choice(len(out), HELD_OUT_LIMIT, replace=False))
        out = [out[k] for k in keep]
    return out


def choose_blend(index: Scoring, rows: list[tuple[int, str, str]]) -> BlendChoice:
    """The centroid weight for `index` (built from `rows`, `knowledge.index.embedded_rows`), by the module's rule."""
    cases = held_out_alternates(index.entries, rows)
    if len(cases) < MIN_HELD_OUT:
        return BlendChoice(0.0, BlendReason.TOO_FEW, len(cases))
    queries = index.vectors[[r for r, _, _ in cases]]
    hidden = [h for _, h, _ in cases]
    dense = index.dense_scores(queries, DEPTH, hidden)
    first: dict[float, list[bool]] = {}
    reciprocal: dict[float, list[float]] = {}
    for weight in (0.0, *BLEND_WEIGHTS):
        first[weight], reciprocal[weight] = [], []
        for q, (best, (_, _, right)) in enumerate(zip(dense, cases, strict=True)):
            scores = index.blend_scores(best, queries[q], weight, hidden[q])
            ranked = sorted(scores, key=lambda e: -scores[e])[:DEPTH]
            rank = next((k + 1 for k, e in enumerate(ranked) if e in right), None)
            first[weight].append(rank == 1)
            reciprocal[weight].append(1.0 / rank if rank else 0.0)
    p1 = {w: float(np.mean(v)) for w, v in first.items()}
    mrr = {w: float(np.mean(v)) for w, v in reciprocal.items()}
    best_weight = max(BLEND_WEIGHTS, key=lambda w: (p1[w], mrr[w]))  # ties keep the smaller weight
    wins = sum(b and not p for b, p in zip(first[best_weight], first[0.0], strict=True))
    losses = sum(p and not b for b, p in zip(first[best_weight], first[0.0], strict=True))
    proven = (wins - losses >= max(MIN_NET, SIGN_Z * math.sqrt(wins + losses))
              and mrr[best_weight] >= mrr[0.0])
    return BlendChoice(best_weight if proven else 0.0, BlendReason.PROVEN if proven else BlendReason.NOT_PROVEN,
                       len(cases), wins, losses, {f"{w:g}": round(v, 4) for w, v in p1.items()},
                       {f"{w:g}": round(v, 4) for w, v in mrr.items()})
