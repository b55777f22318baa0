"""Reading labelled CSV files for the model commands (`train`, `tune`, `evaluate`, `distill`), errors on stderr."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adapters.cli.exit_codes import fail

err = Console(stderr=True)


def read_csv(path: Path, column: str, min_per_label: int = 2, on_conflict: str = "error",
             summaries: dict | None = None):
    """Validated rows; conflicts resolved by `on_conflict` are listed on stderr (and counted in `summaries`)."""
    from nlu.data import DataError, load_labelled_csv

    try:
        loaded = load_labelled_csv(path, column, min_per_label=min_per_label, on_conflict=on_conflict)
    except DataError as exc:
        raise fail(str(exc)) from None
    if loaded.conflicts:
        err.print(f"{len(loaded.conflicts)} text(s) in {path} carry different labels; rule {on_conflict!r}:",
                  markup=False, highlight=False, soft_wrap=True)
        for line in loaded.conflict_lines():
            err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    if summaries is not None:
        summaries[column] = loaded.summary()
    return loaded.examples


class OnConflict(StrEnum):
    """`nlu.data.CONFLICT_RULES`: what to do with a text labelled two ways."""

    drop = "drop"
    majority = "majority"
    error = "error"


OnConflictOpt = Annotated[OnConflict, typer.Option(
    "--on-conflict", help="A text labelled two ways: drop its rows, keep the majority label, or error.")]
