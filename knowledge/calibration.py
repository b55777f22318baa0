"""Choosing the answer rule's bars for outcomes: right answers, at a target rate of wrong ones.

The bars are chosen on customers' questions, not on the knowledge base's own phrasings:
leaving an alternate out and asking it back tells how well the FAQ's authors paraphrase
themselves, which is far stricter than how customers write. A company supplies a
development set (`text,id` CSV, the id of an FAQ entry or an article; an empty id marks a
question nothing covers). Without one, questions are generated from the knowledge base
itself (`knowledge.generation`): each asked with its source hidden, and again with its whole
entry or article hidden, as a near miss the knowledge base cannot answer.

A wrong answer is any FAQ answer to an uncovered question, or another entry's answer to a
covered one; the wrong-answer rate is their share of all calibration questions. Among the
bars that keep it at or under the target, the ones answering most questions right win;
suggestions are then allowed only where they help more covered questions than they
bother uncovered ones.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from knowledge.index import FaqIndex
from knowledge.policy import NEVER, DecisionKind, Hit, IntentSignal, PolicyThresholds, decide, lift
from knowledge.questions import Question, QuestionSet
from knowledge.records import FaqEntry, KnowledgeBaseError, SourceProblem

DEFAULT_TARGET = 0.05  # wrong answers per calibration question
MIN_COVERED = 20  # fewer covered questions than this: keep the default bars
MAX_GENERATED = 600
SEARCH_DEPTH = 10  # entries examined per question: a linked entry may sit below the top five
BOOSTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45)
MIN_CONFIDENCES = (0.5, 0.7, 0.9)
MARGINS = (0.0, 0.01, 0.02, 0.04, 0.06, 0.09)
OOS_EXTRAS = (0.0, 0.05, 0.1, NEVER)
SUGGEST_GAPS = (0.03, 0.06, 0.1)

Classifier = Callable[[Sequence[str]], Sequence[IntentSignal]]


@dataclass
class Case:
    hits: list[Hit]
    signal: IntentSignal | None
    expected: frozenset[str]
    near_miss: bool = False


@dataclass
class Outcomes:
    right: int = 0
    wrong: int = 0
    suggested_right: int = 0
    suggested_wrong: int = 0  # suggestions to a covered question without its entry
    suggested_uncovered: int = 0
    declined_covered: int = 0
    declined_uncovered: int = 0
    near_misses: int = 0
    near_misses_declined: int = 0  # declined or only offered suggestions
    examples: dict = field(default_factory=dict)

    def rates(self, covered: int, uncovered: int) -> dict:
        total = max(covered + uncovered, 1)
        return {"questions": covered + uncovered, "covered": covered, "uncovered": uncovered,
                "right_of_covered": round(self.right / max(covered, 1), 4),
                "wrong_rate": round(self.wrong / total, 4),
                "suggested_with_right_of_covered": round(self.suggested_right / max(covered, 1), 4),
                "declined_of_uncovered": round((self.declined_uncovered + self.suggested_uncovered)
                                               / max(uncovered, 1), 4),
                "near_misses": self.near_misses,
                "declined_of_near_misses": round(self.near_misses_declined / max(self.near_misses, 1), 4)}


def load_questions(path: str | Path, entries: list[FaqEntry]) -> QuestionSet:
    """Read a development set (`text,id[,tone]`; `faq_id` for `id` too); raise `KnowledgeBaseError` naming
    every bad line. An id names an FAQ entry or an article; `a|b` where either answers."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeBaseError([SourceProblem(source, 0, f"cannot read the calibration questions: {exc}")]) from exc
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    id_column = next((c for c in ("id", "faq_id") if c in columns), None)
    if "text" not in columns or id_column is None:
        raise KnowledgeBaseError([SourceProblem(source, 1, f"calibration questions need columns text,id; "
                                                           f"header is {columns}")])
    reader.fieldnames = columns
    known = {e.answer_id for e in entries}
    problems, questions = [], []
    try:
        for row in reader:
            line = reader.line_num
            question = (row.get("text") or "").strip()
            ids = frozenset(i.strip() for i in (row.get(id_column) or "").split("|") if i.strip())
            if not question:
                problems.append(SourceProblem(source, line, "empty question text"))
                continue
            unknown = sorted(ids - known)
            if unknown:
                problems.append(SourceProblem(source, line, f"unknown FAQ or article id(s): {', '.join(unknown)}"))
                continue
            near_miss = not ids and bool((row.get("near") or "").strip())  # `near`: the id it sits next to
            questions.append(Question(question, ids, tone=(row.get("tone") or "").strip(), near_miss=near_miss))
    except csv.Error as exc:
        problems.append(SourceProblem(source, reader.line_num, f"malformed CSV: {exc}"))
    if problems:
        raise KnowledgeBaseError(problems)
    covered = sum(bool(q.expected) for q in questions)
    return QuestionSet(questions, f"{path.name}: {covered} covered and {len(questions) - covered} uncovered "
                                  f"customer questions")


def collect_cases(index: FaqIndex, questions: QuestionSet, encode: Callable[[list[str]], np.ndarray],
                  classify: Classifier | None) -> list[Case]:
    """Search every question once; the grid search then only re-scores these hits."""
    texts = [q.text for q in questions.questions]
    if not texts:
        return []
    vectors = encode(texts)
    excluded = [set(q.exclude_rows) for q in questions.questions]
    hits = index.search_vectors(vectors, texts, top_k=SEARCH_DEPTH,
                                exclude_rows=excluded if any(excluded) else None)
    signals = list(classify(texts)) if classify is not None else [None] * len(texts)
    return [Case(h, s, q.expected, q.near_miss) for h, s, q in zip(hits, signals, questions.questions, strict=True)]


def evaluate(cases: list[Case], thresholds: PolicyThresholds) -> Outcomes:
    """What the rule with these bars does to each calibration question."""
    out = Outcomes()
    for case in cases:
        decision = decide(case.hits, case.signal, thresholds)
        if case.near_miss:
            out.near_misses += 1
            out.near_misses_declined += decision.kind is not DecisionKind.ANSWER
        if decision.kind is DecisionKind.ANSWER:
            if decision.best.id in case.expected:
                out.right += 1
            else:
                out.wrong += 1
        elif decision.kind is DecisionKind.SUGGEST:
            if not case.expected:
                out.suggested_uncovered += 1
            elif any(h.id in case.expected for h in decision.hits):
                out.suggested_right += 1
            else:
                out.suggested_wrong += 1
        elif case.expected:
            out.declined_covered += 1
        else:
            out.declined_uncovered += 1
    return out


def _answer_grid(cases: list[Case], base: PolicyThresholds, target: float) -> tuple[PolicyThresholds, int, int]:
    """The answer bars (boost, confidence, margin, out-of-scope extra, answer) that answer most right."""
    n = len(cases)
    allowed = int(np.floor(target * n + 1e-9))
    covered = np.array([bool(c.expected) for c in cases])
    oos = np.array([bool(c.signal is not None and c.signal.out_of_scope) for c in cases])
    has_signal = any(c.signal is not None for c in cases)
    linked = any(h.entry.intents for c in cases for h in c.hits)
    boosts = BOOSTS if has_signal and linked else (0.0,)
    confidences = MIN_CONFIDENCES if len(boosts) > 1 else (base.intent_confidence,)
    extras = OOS_EXTRAS if oos.any() else (NEVER,)
    best = (-1, 0, base)  # (right, -wrong, thresholds)
    for boost in boosts:
        for min_conf in confidences:
            probe = PolicyThresholds(intent_boost=boost, intent_confidence=min_conf)
            ranked = [lift(c.hits, c.signal, probe) for c in cases]
            top = np.array([r[0].score if r else -1.0 for r in ranked])
            runner = np.array([r[1].score if len(r) > 1 else -1.0 for r in ranked])
            right_top = np.array([bool(r) and r[0].id in c.expected for r, c in zip(ranked, cases, strict=True)])
            candidates = np.unique(np.quantile(top[covered], np.linspace(0, 1, 81))) if covered.any() else top
            for margin in MARGINS:
                clear = (top - runner) >= margin
                for extra in extras:
                    lifted_bar = np.where(oos, extra, 0.0)
                    for bar in candidates:
                        answered = clear & (top >= bar + lifted_bar)
                        wrong = int(np.sum(answered & ~right_top))
                        if wrong > allowed:
                            continue
                        right = int(np.sum(answered & right_top))
                        if (right, -wrong) > best[:2]:
                            best = (right, -wrong, PolicyThresholds(
                                answer=round(float(bar), 4), margin=margin, intent_boost=boost,
                                intent_confidence=min_conf, oos_extra=extra))
    return best[2], best[0], -best[1]


def _suggestion_grid(cases: list[Case], chosen: PolicyThresholds) -> PolicyThresholds:
    """Suggestion bars that help more covered questions than they bother uncovered ones; else none.

    Answers are decided before suggestions, so only the questions the chosen bars leave
    unanswered (and in scope) are re-scored here, from rankings computed once.
    """
    open_cases = []
    for case in cases:
        if decide(case.hits, case.signal, chosen).kind is DecisionKind.ANSWER:
            continue
        if case.signal is not None and case.signal.out_of_scope:
            continue  # declined before suggestions are considered
        ranked = lift(case.hits, case.signal, chosen)[:3]
        if len(ranked) >= 2:
            open_cases.append(([h.score for h in ranked], [h.id in case.expected for h in ranked], case.expected))
    scores = sorted({s for ranked_scores, _, _ in open_cases for s in ranked_scores})
    best_value, best = 0.0, replace(chosen, suggest=NEVER)
    if not scores:
        return best
    for gap in SUGGEST_GAPS:
        width = max(gap, chosen.margin)
        for bar in np.unique(np.quantile(scores, np.linspace(0, 1, 41))):
            value = 0.0
            for ranked_scores, is_right, expected in open_cases:
                close = [i for i, s in enumerate(ranked_scores) if s >= bar and ranked_scores[0] - s <= width]
                if len(close) < 2:
                    continue
                if not expected:
                    value -= 1.0
                elif any(is_right[i] for i in close):
                    value += 1.0
                else:
                    value -= 0.5
            if value > best_value:
                best_value, best = value, replace(chosen, suggest=round(float(bar), 4), suggest_gap=gap)
    return best


def calibrate(cases: list[Case], origin: str, target: float = DEFAULT_TARGET) -> PolicyThresholds:
    """Bars for this knowledge base (and intent model), with what they did on the questions."""
    covered = sum(bool(c.expected) for c in cases)
    if covered < MIN_COVERED:
        return PolicyThresholds(method=f"default (fewer than {MIN_COVERED} covered calibration questions)")
    chosen, _, _ = _answer_grid(cases, PolicyThresholds(), target)
    chosen = _suggestion_grid(cases, chosen)
    chosen.method = f"calibrated for <= {target:.0%} wrong answers on {origin}"
    outcomes = evaluate(cases, chosen)
    chosen.measured = outcomes.rates(covered, len(cases) - covered)
    chosen.measured["target_wrong_rate"] = target
    return chosen
