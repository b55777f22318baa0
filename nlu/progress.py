"""Progress reporting for training: a rich progress bar with the loss and the dev score."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainingProgress(Protocol):
    def start(self, total_steps: int) -> None: ...
    def advance(self, epoch: int, loss: float) -> None: ...
    def epoch_done(self, epoch: int, scores: dict) -> None: ...
    def stop(self) -> None: ...


class RichProgress:
    """Shows steps, a running loss and the last dev score; prints one line per epoch."""

    def __init__(self, console: Console | None = None, description: str = "training"):
        self.console = console or Console(stderr=True)
        self.description = description
        self._progress: Progress | None = None
        self._task = None
        self._loss: float | None = None
        self._dev = "-"

    def start(self, total_steps: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("dev {task.fields[dev]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=total_steps, loss="-", dev="-")

    def advance(self, epoch: int, loss: float) -> None:
        # Exponential moving average: a single step's loss is too noisy to read.
        self._loss = loss if self._loss is None else 0.9 * self._loss + 0.1 * loss
        if self._progress is not None:
            self._progress.update(
                self._task, advance=1, description=f"{self.description} (epoch {epoch})",
                loss=f"{self._loss:.3f}", dev=self._dev,
            )

    def epoch_done(self, epoch: int, scores: dict) -> None:
        self._dev = f"{scores.get('dev_score', 0.0):.4f}"
        details = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))
        if self._progress is not None:
            self._progress.update(self._task, dev=self._dev)
            self._progress.console.log(f"epoch {epoch}: {details}")

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
