"""`frontdesk distill`: a smaller student of a trained model, in the same directory format."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adapters.cli.data import read_csv
from adapters.cli.exit_codes import fail

console = Console()
err = Console(stderr=True)


def _data_file(given: Path | None, recorded: dict, task: str, option: str, teacher: Path) -> tuple[Path, str]:
    """The file given on the command line (conflicts dropped), else the one the teacher was trained on and the
    conflict rule it was read with (its metrics.json)."""
    if given is not None:
        return given, "drop"
    found = recorded.get(task)
    if found is None:
        raise fail(f"teacher {teacher} does not record its {task} data (metrics.json has no data.{task}): "
                   f"pass {option} CSV")
    if not found.path.is_file():
        raise fail(f"teacher {teacher} was trained on {found.path}, which does not exist here: pass {option} CSV")
    return found.path, found.rule


def distill(
    teacher: Annotated[Path, typer.Option("--teacher", help="The trained model directory to compress.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the student model to.")],
    layers: Annotated[int, typer.Option("--layers", min=1, help="Transformer layers the student keeps.")] = 4,
    ffn_width: Annotated[int | None, typer.Option(
        "--ffn-width", min=1, help="Hidden neurons each feed-forward block keeps (default: all, e.g. 1536).")] = None,
    texts: Annotated[Path | None, typer.Option("--texts", help="CSV with a text column: unlabelled texts.")] = None,
    intents: Annotated[Path | None, typer.Option("--intents", help="Intent CSV (default: the teacher's).")] = None,
    sentiment: Annotated[Path | None, typer.Option("--sentiment", help="Sentiment CSV (default: the teacher's).")]
    = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 3,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option("--seed")] = 13,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after this many steps.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Distil --teacher into a student with fewer layers (and, with --ffn-width, narrower ones) that matches its
    answers; serve, export or deploy it like any model directory."""
    from nlu.distill import DistillConfig, DistillError, load_teacher, read_texts, recorded_data
    from nlu.progress import RichProgress

    try:
        bundle = load_teacher(teacher)  # first: a teacher it cannot read is the most likely mistake
    except DistillError as exc:
        raise fail(str(exc)) from None
    recorded = recorded_data(teacher)
    data: dict = {}
    intent_file, intent_rule = _data_file(intents, recorded, "intent", "--intents", teacher)
    intent_rows = read_csv(intent_file, "intent", on_conflict=intent_rule, summaries=data)
    sentiment_file, sentiment_rule = _data_file(sentiment, recorded, "sentiment", "--sentiment", teacher)
    sentiment_rows = read_csv(sentiment_file, "sentiment", on_conflict=sentiment_rule, summaries=data)
    from nlu.distill import distill as run_distill

    shape = f"{layers} layers" + (f", feed-forward width {ffn_width}" if ffn_width else "")
    try:
        extra = read_texts(texts) if texts is not None else []
        result = run_distill(teacher, out, intent_rows, sentiment_rows,
                             DistillConfig(layers=layers, ffn_width=ffn_width, epochs=epochs, device=device, seed=seed,
                                           max_steps=max_steps),
                             texts=extra, progress=RichProgress(err, f"distilling to {shape}"), data=data,
                             teacher=bundle)
    except (DistillError, ValueError) as exc:
        raise fail(str(exc)) from None
    dev = result.metrics["dev"]
    if as_json:
        sys.stdout.write(json.dumps({"out": str(result.out_dir), "teacher": str(teacher), "layers": layers,
                                     "ffn_width": ffn_width,
                                     "dev": dev, "train_seconds": result.metrics["train_seconds"]}) + "\n")
        return
    summary = ", ".join(f"{task} accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f}" for task, m in dev.items())
    console.print(f"Student ({shape}) written to {result.out_dir} ({summary}); "
                  f"export it with `frontdesk export --model {result.out_dir} --out DIR --quantize int8`")

