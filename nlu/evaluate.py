"""Scoring a model on labelled data: metrics, per-label report and plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from nlu.data import OOS_LABEL, Example


@dataclass
class EvalReport:
    task: str  # "intent" or "sentiment"
    n: int
    accuracy: float
    macro_f1: float
    per_label: dict[str, dict[str, float]]
    labels: list[str]
    confusion: list[list[int]]
    confidences: list[float]
    correct: list[bool]
    closed_set_accuracy: float | None = None  # intents only: the top intent, no out-of-scope gate
    in_scope_accuracy: float | None = None
    oos_recall: float | None = None
    oos_precision: float | None = None
    unknown_labels: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """The `--json` object: headline numbers plus the per-label report."""
        out: dict = {"task": self.task, "n": self.n, "accuracy": round(self.accuracy, 4),
                     "macro_f1": round(self.macro_f1, 4)}
        if self.closed_set_accuracy is not None:
            out["closed_set_accuracy"] = round(self.closed_set_accuracy, 4)
        if self.in_scope_accuracy is not None:
            out["in_scope_accuracy"] = round(self.in_scope_accuracy, 4)
            out["oos_recall"] = round(self.oos_recall or 0.0, 4)
            out["oos_precision"] = round(self.oos_precision or 0.0, 4)
        if self.unknown_labels:
            out["unknown_labels"] = self.unknown_labels
        out["per_label"] = self.per_label
        return out


def score(
    examples: Sequence[Example], predicted: Sequence[str], confidences: Sequence[float], task: str,
    top: Sequence[str] | None = None,
) -> EvalReport:
    """Compare gold labels with predictions; `oos` rows add in-scope accuracy and oos recall.

    `predicted` is what the bot decides (the out-of-scope gate applied: `accuracy`). `top`, for
    intents, is the best in-scope intent whatever the gate says: `closed_set_accuracy`, the share
    of in-scope rows whose gold intent it is. That is the figure published intent-classification
    results use (BANKING77: 93.5 % closed-set where the gated accuracy is 91.6 %); `oos` rows are
    left out of it because a closed-set classifier cannot name them.
    """
    gold = [e.label for e in examples]
    pred = list(predicted)
    labels = sorted(set(gold) | set(pred))
    correct = [g == p for g, p in zip(gold, pred, strict=True)]
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, pred, labels=labels, zero_division=0
    )
    per_label = {
        label: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }
    gold_labels = sorted(set(gold))
    report = EvalReport(
        task=task,
        n=len(gold),
        accuracy=float(np.mean(correct)) if correct else 0.0,
        macro_f1=float(f1_score(gold, pred, labels=gold_labels, average="macro", zero_division=0)) if gold else 0.0,
        per_label=per_label,
        labels=labels,
        confusion=confusion_matrix(gold, pred, labels=labels).tolist() if gold else [],
        confidences=[float(c) for c in confidences],
        correct=correct,
    )
    if task == "intent" and top is not None:
        scored = [g == t for g, t in zip(gold, top, strict=True) if g != OOS_LABEL]
        report.closed_set_accuracy = float(np.mean(scored)) if scored else 0.0
    if task == "intent" and OOS_LABEL in gold:
        is_gold_oos = np.array([g == OOS_LABEL for g in gold])
        is_pred_oos = np.array([p == OOS_LABEL for p in pred])
        hits = np.array(correct)
        report.in_scope_accuracy = float(hits[~is_gold_oos].mean()) if (~is_gold_oos).any() else 0.0
        report.oos_recall = float(is_pred_oos[is_gold_oos].mean())
        report.oos_precision = float(is_gold_oos[is_pred_oos].mean()) if is_pred_oos.any() else 0.0
    return report


def top_intent(result) -> str:
    """The best in-scope intent of an `NluResult`, ignoring the out-of-scope gate (closed-set decision)."""
    return str(result.top_intents[0]["intent"]) if result.top_intents else result.intent


def score_intents(examples: Sequence[Example], results: Sequence) -> EvalReport:
    """`score` for intent rows from the predictor's results: gated and closed-set figures together."""
    return score(examples, [r.intent for r in results], [r.confidence for r in results], "intent",
                 top=[top_intent(r) for r in results])


def save_plots(report: EvalReport, out_dir: str | Path, prefix: str = "") -> list[Path]:
    """Confusion-matrix and confidence-histogram PNGs; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    n = len(report.labels)
    size = min(4 + 0.18 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    matrix = np.asarray(report.confusion, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), report.labels, rotation=90, fontsize=max(4, 10 - n // 15))
    ax.set_yticks(range(n), report.labels, fontsize=max(4, 10 - n // 15))
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{report.task} confusion (row-normalised), accuracy {report.accuracy:.3f}")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if normalised[i, j] > 0.5 else "black")
    fig.tight_layout()
    path = out / f"{prefix}{report.task}_confusion.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(6, 4))
    conf = np.asarray(report.confidences)
    ok = np.asarray(report.correct, dtype=bool)
    bins = np.linspace(0, 1, 21)
    ax.hist(conf[ok], bins=bins, alpha=0.7, label="correct")
    ax.hist(conf[~ok], bins=bins, alpha=0.7, label="wrong")
    ax.set_xlabel("confidence")
    ax.set_ylabel("messages")
    ax.set_title(f"{report.task} confidence")
    ax.legend()
    fig.tight_layout()
    path = out / f"{prefix}{report.task}_confidence.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written
