"""Labelled-text CSV loading with validation that names file and line for every problem.

Training data arrives as CSV files written by people (`text,intent` or `text,sentiment`).
A bad row must never be silently dropped or silently kept: we collect *every* problem in
the file and raise them together, so the author can fix the file in one pass.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

OOS_LABEL = "oos"


@dataclass(frozen=True)
class Example:
    """One labelled utterance and where it came from (for error messages)."""

    text: str
    label: str
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class DataProblem:
    """A single problem in a data file, located by file and line."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


class DataError(ValueError):
    """Raised when a data file has one or more problems; carries all of them."""

    def __init__(self, problems: Sequence[DataProblem]):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in training data:\n{lines}")


def normalize_text(text: str) -> str:
    """Canonical form used to detect duplicates: NFKC, casefolded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def read_labelled_csv(path: str | Path, label_column: str, *, min_per_label: int = 2) -> list[Example]:
    """Read a `text,<label_column>` CSV and validate it.

    Raises `DataError` listing every problem: unreadable file, missing columns, empty
    text or label, the same text with two different labels, and labels with fewer than
    `min_per_label` examples (a stratified dev split needs at least two).
    """
    path = Path(path)
    source = str(path)
    problems: list[DataProblem] = []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError([DataProblem(source, 0, f"cannot read file: {exc.strerror or exc}")]) from exc
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError([DataProblem(source, line, "file is not valid UTF-8")]) from exc

    reader = csv.reader(content.splitlines(keepends=True))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError([DataProblem(source, 1, "file is empty; expected a header row")]) from None
    except csv.Error as exc:
        raise DataError([DataProblem(source, 1, f"malformed CSV: {exc}")]) from exc
    columns = [h.strip().lower() for h in header]
    missing = [c for c in ("text", label_column) if c not in columns]
    if missing:
        raise DataError(
            [
                DataProblem(
                    source,
                    1,
                    f"missing column(s) {', '.join(repr(m) for m in missing)}; "
                    f"header is {header!r}, expected 'text,{label_column}'",
                )
            ]
        )
    text_idx, label_idx = columns.index("text"), columns.index(label_column)

    examples: list[Example] = []
    first_seen: dict[str, Example] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines are harmless
            if len(row) <= max(text_idx, label_idx):
                problems.append(
                    DataProblem(source, line, f"row has {len(row)} field(s), expected {len(columns)}")
                )
                continue
            text = row[text_idx].strip()
            label = row[label_idx].strip()
            if not text:
                problems.append(DataProblem(source, line, "empty text"))
                continue
            if not label:
                problems.append(DataProblem(source, line, f"empty {label_column}"))
                continue
            example = Example(text=text, label=label, source=source, line=line)
            key = normalize_text(text)
            earlier = first_seen.get(key)
            if earlier is not None:
                if earlier.label != label:
                    problems.append(
                        DataProblem(
                            source,
                            line,
                            f"text {text[:60]!r} is labelled {label!r} here but "
                            f"{earlier.label!r} on line {earlier.line}",
                        )
                    )
                continue  # an exact duplicate with the same label adds nothing
            first_seen[key] = example
            examples.append(example)
    except csv.Error as exc:
        problems.append(DataProblem(source, reader.line_num, f"malformed CSV: {exc}"))

    counts = Counter(e.label for e in examples)
    for label, count in sorted(counts.items()):
        if count < min_per_label:
            where = next(e.line for e in examples if e.label == label)
            problems.append(
                DataProblem(
                    source,
                    where,
                    f"{label_column} {label!r} has only {count} example(s); at least {min_per_label} needed",
                )
            )
    if not examples and not problems:
        problems.append(DataProblem(source, 1, "no data rows"))
    if problems:
        raise DataError(sorted(problems, key=lambda p: p.line))
    return examples


def stratified_split(
    examples: Sequence[Example], dev_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split into (train, dev) keeping each label's share; every label keeps >= 1 training row."""
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    rng = random.Random(seed)
    train: list[Example] = []
    dev: list[Example] = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        n_dev = round(len(group) * dev_fraction)
        n_dev = min(max(n_dev, 1 if len(group) >= 2 else 0), len(group) - 1)
        dev.extend(group[:n_dev])
        train.extend(group[n_dev:])
    rng.shuffle(train)
    return train, dev


DEMO_DIR = Path(__file__).parent / "demo"


def demo_intents_path() -> Path:
    """The demo store's intent examples (shipped with the package)."""
    return DEMO_DIR / "intents.csv"


def demo_sentiment_path() -> Path:
    """Customer-voice sentiment examples, also the default when no sentiment CSV is given."""
    return DEMO_DIR / "sentiment.csv"
