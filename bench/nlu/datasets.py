"""The NLU benchmark's data: the public datasets' fixed splits, and the metrics every part reports.

Shared by the fine-tuning parts (`bench.nlu.run`) and the distillation parts (`bench.nlu.distill`).
"""

from __future__ import annotations

import csv

from bench._setup import DATA
from nlu.data import DataError, Example, normalize_text, read_labelled_csv, stratified_split
from nlu.evaluate import score

SEED = 2024


def load(name: str, file: str, column: str) -> list[Example]:
    """Read a public data set. Unlike `frontdesk train`, which refuses them, texts that appear
    with two different labels (29 tweets in the airline set) are dropped, not fatal."""
    try:
        return read_labelled_csv(DATA / name / file, column, min_per_label=1)
    except DataError as exc:
        conflicts = {p.line for p in exc.problems if "is labelled" in p.message}
        if len(conflicts) != len(exc.problems):
            raise
    rows = list(csv.DictReader((DATA / name / file).open(encoding="utf-8")))
    labels: dict[str, set[str]] = {}
    for row in rows:
        labels.setdefault(normalize_text(row["text"]), set()).add(row[column].strip())
    kept = [Example(row["text"].strip(), row[column].strip()) for row in rows
            if len(labels[normalize_text(row["text"])]) == 1]
    unique = list({normalize_text(e.text): e for e in kept}.values())
    print(f"{name}: dropped {len(rows) - len(kept)} rows whose text carries two labels", flush=True)
    return unique


def banking_split() -> tuple[list[Example], list[Example]]:
    return stratified_split(load("banking77", "train.csv", "intent"), 0.1, SEED)


def airline_split() -> tuple[list[Example], list[Example]]:
    return stratified_split(load("airline_sentiment", "train.csv", "sentiment"), 0.2, SEED)


def clinc_split() -> tuple[list[Example], list[Example]]:
    return load("clinc150", "train.csv", "intent"), load("clinc150", "val.csv", "intent")


def intent_metrics(test: list[Example], predicted: list[str]) -> dict:
    report = score(test, predicted, [1.0] * len(predicted), "intent")
    out = {"accuracy": report.accuracy, "macro_f1": report.macro_f1}
    if report.in_scope_accuracy is not None:
        out.update(in_scope_accuracy=report.in_scope_accuracy, oos_recall=report.oos_recall)
    return out


def sentiment_metrics(test: list[Example], predicted: list[str]) -> dict:
    report = score(test, predicted, [1.0] * len(predicted), "sentiment")
    return {"accuracy": report.accuracy, "macro_f1": report.macro_f1}


# ---------------------------------------------------------------- baselines
