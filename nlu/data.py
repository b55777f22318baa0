"""Labelled-text CSV loading with validation that names file and line for every problem.

Training data arrives as CSV files written by people (`text,intent` or `text,sentiment`).
A bad row must never be silently dropped or silently kept: we collect *every* problem in
the file and raise them together, so the author can fix the file in one pass. The one
exception is a text labelled two ways: real data always holds some, so a stated rule
(`--on-conflict drop|majority|error`) resolves them and each is reported with its lines.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
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


CONFLICT_RULES = ("drop", "majority", "error")


@dataclass(frozen=True)
class Conflict:
    """One text labelled differently in different rows, and what the stated rule did with it."""

    text: str
    rows: tuple[tuple[int, str], ...]  # (line, label) for every row of this text, in file order
    kept: str | None  # the label kept (majority), or None when every row was dropped

    def describe(self, source: str) -> str:
        """`file:line: ...` naming both (all) labels, as a person fixing the file needs it."""
        first_line, first_label = self.rows[0]
        others = ", ".join(f"{label!r} on line {line}" for line, label in self.rows[1:] if label != first_label)
        outcome = f"kept {self.kept!r}" if self.kept is not None else "dropped"
        return (f"{source}:{first_line}: text {self.text[:60]!r} is labelled {first_label!r} here "
                f"but {others} ({outcome})")


@dataclass
class LoadedData:
    """A validated file: the examples to use and the conflicts resolved on the way (see `load_labelled_csv`)."""

    examples: list[Example]
    source: str
    rule: str
    conflicts: list[Conflict] = field(default_factory=list)
    rows_read: int = 0

    @property
    def dropped_rows(self) -> int:
        return sum(len(c.rows) for c in self.conflicts if c.kept is None)

    @property
    def relabelled_rows(self) -> int:
        return sum(1 for c in self.conflicts if c.kept is not None for _, label in c.rows if label != c.kept)

    def summary(self) -> dict:
        """The counts `metrics.json` records under `data`, and the file's absolute path (for `frontdesk distill`)."""
        return {"file": self.source, "path": str(Path(self.source).resolve()), "rule": self.rule,
                "rows": self.rows_read, "examples": len(self.examples),
                "conflicting_texts": len(self.conflicts), "dropped_rows": self.dropped_rows,
                "relabelled_rows": self.relabelled_rows}

    def conflict_lines(self) -> list[str]:
        return [c.describe(self.source) for c in self.conflicts]


def read_labelled_csv(path: str | Path, label_column: str, *, min_per_label: int = 2,
                      on_conflict: str = "error") -> list[Example]:
    """The examples of `load_labelled_csv` (by default a conflicting label is an error, as it always was here)."""
    return load_labelled_csv(path, label_column, min_per_label=min_per_label, on_conflict=on_conflict).examples


def load_labelled_csv(path: str | Path, label_column: str, *, min_per_label: int = 2,
                      on_conflict: str = "error") -> LoadedData:
    """Read a `text,<label_column>` CSV and validate it.

    Raises `DataError` listing every problem: unreadable file, missing columns, empty
    text or label, and labels with fewer than `min_per_label` examples (a stratified dev
    split needs at least two). These make a file unusable, whatever the rule.

    The same text (after `normalize_text`) with different labels is a *conflict*. Real data
    always holds a few (18 of 11,640 airline tweets), so a stated rule decides, and every
    conflict is returned for the caller to report with file and line:
      * "drop" (what `frontdesk train` does by default): every row of that text is left out,
        since we cannot tell which label is right;
      * "majority": the label most of its rows carry is kept (one row); a tie is dropped;
      * "error": a problem like the others (nothing is trained until the file is clean).
    The label-count check runs after the rule, so a label emptied by dropping is still caught.
    """
    if on_conflict not in CONFLICT_RULES:
        raise ValueError(f"on_conflict must be one of {', '.join(CONFLICT_RULES)} (got {on_conflict!r})")
    source = str(Path(path))
    problems: list[DataProblem] = []
    rows_by_text, rows_read = _read_rows(Path(path), label_column, problems)
    examples, conflicts = _apply_conflict_rule(rows_by_text, on_conflict, source, problems)
    problems += _short_labels(examples, label_column, min_per_label, source)
    if not examples and not problems:
        problems.append(DataProblem(source, 1, "no data rows" if not rows_read else
                                    f"no data rows left after the conflict rule {on_conflict!r}"))
    if problems:
        raise DataError(sorted(problems, key=lambda p: p.line))
    return LoadedData(examples=examples, source=source, rule=on_conflict, conflicts=conflicts, rows_read=rows_read)


def _read_rows(path: Path, label_column: str,
               problems: list[DataProblem]) -> tuple[dict[str, list[Example]], int]:
    """Every usable row grouped by its normalised text (in order of first appearance), and how many rows
    were read; row problems go to `problems`, a file that cannot be read at all raises `DataError`."""
    source = str(path)
    reader = csv.reader(_decoded(path).splitlines(keepends=True))
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

    rows_by_text: dict[str, list[Example]] = {}  # insertion order = first appearance
    rows_read = 0
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines are harmless
            rows_read += 1
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
            rows_by_text.setdefault(normalize_text(text), []).append(
                Example(text=text, label=label, source=source, line=line))
    except csv.Error as exc:
        problems.append(DataProblem(source, reader.line_num, f"malformed CSV: {exc}"))
    return rows_by_text, rows_read


def _decoded(path: Path) -> str:
    """The file's text; `DataError` when it cannot be read or is not UTF-8 (a BOM is allowed)."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError([DataProblem(source, 0, f"cannot read file: {exc.strerror or exc}")]) from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError([DataProblem(source, line, "file is not valid UTF-8")]) from exc


def _apply_conflict_rule(rows_by_text: dict[str, list[Example]], on_conflict: str, source: str,
                         problems: list[DataProblem]) -> tuple[list[Example], list[Conflict]]:
    """The examples kept (in line order) and the conflicts resolved by the rule (see `load_labelled_csv`)."""
    examples: list[Example] = []
    conflicts: list[Conflict] = []
    for rows in rows_by_text.values():
        first = rows[0]
        if all(r.label == first.label for r in rows):
            examples.append(first)  # an exact duplicate with the same label adds nothing
            continue
        if on_conflict == "error":
            examples.append(first)  # counted as before, so a label is not also reported short of examples
            for r in rows[1:]:
                if r.label != first.label:
                    problems.append(DataProblem(source, r.line, f"text {r.text[:60]!r} is labelled {r.label!r} "
                                                                f"here but {first.label!r} on line {first.line}"))
            continue
        kept = None
        if on_conflict == "majority":
            (top, n_top), *rest = Counter(r.label for r in rows).most_common()
            if not rest or rest[0][1] < n_top:
                kept = top
                examples.append(next(r for r in rows if r.label == top))
        conflicts.append(Conflict(text=first.text, rows=tuple((r.line, r.label) for r in rows), kept=kept))
    examples.sort(key=lambda e: e.line)
    return examples, conflicts


def _short_labels(examples: list[Example], label_column: str, min_per_label: int, source: str) -> list[DataProblem]:
    """A problem for each label with fewer than `min_per_label` examples (after the conflict rule)."""
    problems = []
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
    return problems


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
