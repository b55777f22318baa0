"""The `frontdesk` command line (names listed in docs/OPERATIONS.md "Settings")."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub at run time
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer
from rich.console import Console
from rich.table import Table

from adapters.cli.conversation_tests.command import test as conversation_test
from adapters.cli.data import OnConflict, OnConflictOpt
from adapters.cli.data import read_csv as _read_csv
from adapters.cli.distill import distill
from adapters.cli.exit_codes import FrontdeskGroup, usage, version_callback
from adapters.cli.exit_codes import fail as _fail
from adapters.cli.faq import faq_app
from adapters.cli.model import model_app, review_app
from adapters.cli.report import report
from adapters.cli.staff import staff_app
from adapters.runtime.demo_model import ensure_demo_model
from adapters.runtime.embedded_redis import start_embedded_redis, stop_embedded_redis
from adapters.runtime.serving import apply_config_file, serve_forever
from adapters.runtime.settings import load_settings

# FrontdeskGroup: exit 1 for a failure in any command, however registered (adapters/cli/exit_codes.py).
app = typer.Typer(help="Frontdesk: a self-hosted customer-service chatbot.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=FrontdeskGroup)
app.add_typer(faq_app, name="kb")
app.add_typer(faq_app, name="faq", help="The `kb` commands under their first name (build, search, reload, tune).")
app.add_typer(staff_app, name="staff")
app.add_typer(model_app, name="model")
app.add_typer(review_app, name="review")
app.command()(distill)
app.command()(report)  # the weekly digest for a team meeting (adapters/cli/report.py)
app.command(name="test")(conversation_test)  # conversation tests in YAML (docs/CONVERSATION_TESTS.md)
console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout (progress and logs on stderr).")]


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Frontdesk: a self-hosted customer-service chatbot."""


ModelOpt = Annotated[Path, typer.Option("--model", help="Trained model directory.", envvar="FRONTDESK_MODEL_DIR")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]


def _load_predictor(model: Path, device: str):
    from nlu.artifacts import ModelLoadError
    from nlu.engine import load_predictor

    try:
        return load_predictor(model, device)
    except (ModelLoadError, ValueError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def train(
    intents: Annotated[Path, typer.Option("--intents", help="CSV with columns text,intent ('oos' = out of scope).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the model to.")],
    sentiment: Annotated[Path | None, typer.Option("--sentiment", help="CSV with columns text,sentiment.")] = None,
    base_model: Annotated[Path | None, typer.Option("--base-model", help="Local HF encoder directory.")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    device: DeviceOpt = "auto",
    seed: Annotated[int, typer.Option("--seed")] = 13,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Encoder learning rate.")] = 8e-5,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Add chat-noise copies.")] = False,
    balance_sentiment: Annotated[bool, typer.Option("--balance-sentiment", help="Class-weighted loss.")] = False,
    dev_fraction: Annotated[float, typer.Option("--dev-fraction", min=0.0, max=0.5)] = 0.1,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after this many steps.")] = None,
    layers: Annotated[int | None, typer.Option(
        "--layers", min=1, help="Keep only this many of the base model's layers (a smaller model, trained directly; "
        "`frontdesk distill` usually does better).")] = None,
    on_conflict: OnConflictOpt = OnConflict.drop,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune the joint intent + sentiment model and write it to --out."""
    from nlu.data import demo_sentiment_path
    from nlu.fit import fit
    from nlu.progress import RichProgress
    from nlu.train import TrainConfig

    if base_model is not None and not (base_model / "config.json").is_file():
        raise _fail(f"--base-model {base_model} is not a Hugging Face model directory (no config.json)")
    data: dict = {}
    intent_rows = _read_csv(intents, "intent", on_conflict=on_conflict.value, summaries=data)
    if sentiment is None:
        sentiment = demo_sentiment_path()
        err.print(f"no --sentiment given: training the sentiment head on the bundled examples ({sentiment})")
    sentiment_rows = _read_csv(sentiment, "sentiment", on_conflict=on_conflict.value, summaries=data)
    config = TrainConfig(
        base_model=str(base_model) if base_model else None, epochs=epochs, device=device, seed=seed,
        batch_size=batch_size, lr=lr, augment=augment, dev_fraction=dev_fraction, max_steps=max_steps,
        balance_sentiment=balance_sentiment, layers=layers,
    )
    try:
        result = fit(intent_rows, sentiment_rows, out, config, progress=RichProgress(err), data=data)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    dev = result.metrics["dev"]
    if as_json:
        sys.stdout.write(json.dumps({"out": str(result.out_dir), "dev": dev,
                                     "train_seconds": result.metrics["train_seconds"]}) + "\n")
        return
    summary = ", ".join(f"{task} accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f}" for task, m in dev.items())
    console.print(f"model written to {result.out_dir} ({summary}; {result.metrics['train_seconds']} s)")


@app.command()
def tune(
    intents: Annotated[Path, typer.Option("--intents", help="CSV with columns text,intent.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the best model.")],
    sentiment: Annotated[Path | None, typer.Option("--sentiment", help="CSV with columns text,sentiment.")] = None,
    trials: Annotated[int, typer.Option("--trials", min=1)] = 10,
    epochs: Annotated[int, typer.Option("--epochs", min=3, help="Largest epoch count tried.")] = 8,
    device: DeviceOpt = "auto",
    seed: Annotated[int, typer.Option("--seed")] = 13,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Cap each trial's steps.")] = None,
) -> None:
    """Search learning rates, batch size, label smoothing and epochs on the dev split; save the best."""
    from nlu.data import demo_sentiment_path
    from nlu.fit import fit
    from nlu.progress import RichProgress
    from nlu.train import TrainConfig
    from nlu.tune import tune as run_search

    intent_rows = _read_csv(intents, "intent")
    sentiment_rows = _read_csv(sentiment or demo_sentiment_path(), "sentiment")
    base = TrainConfig(epochs=epochs, device=device, seed=seed, max_steps=max_steps)
    best, _ = run_search(
        intent_rows, sentiment_rows, base, trials,
        on_trial=lambda r: err.print(f"trial {r['trial']}: dev {r['dev_score']:.4f} {r}"),
    )
    err.print(f"best configuration: lr {best.lr:.2e}, head_lr {best.head_lr:.2e}, batch {best.batch_size}, "
              f"label smoothing {best.label_smoothing:.3f}, epochs {best.epochs}")
    result = fit(intent_rows, sentiment_rows, out, best, progress=RichProgress(err))
    console.print(f"best model written to {result.out_dir}")


@app.command()
def evaluate(
    model: ModelOpt,
    intents: Annotated[Path | None, typer.Option("--intents", help="CSV text,intent to score.")] = None,
    sentiment: Annotated[Path | None, typer.Option("--sentiment", help="CSV text,sentiment to score.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write confusion/confidence PNGs here.")] = None,
    device: DeviceOpt = "auto",
    on_conflict: OnConflictOpt = OnConflict.drop,
) -> None:
    """Score a model on a labelled CSV (accuracy, macro-F1, per label; oos rows add oos recall)."""
    from nlu.evaluate import save_plots, score, score_intents

    if (intents is None) == (sentiment is None):
        raise usage("give exactly one of --intents CSV or --sentiment CSV")
    task, path = ("intent", intents) if intents is not None else ("sentiment", sentiment)
    rows = _read_csv(path, task, min_per_label=1, on_conflict=on_conflict.value)
    predictor = _load_predictor(model, device)
    results = predictor.predict([r.text for r in rows])
    if task == "intent":
        report = score_intents(rows, results)
    else:
        report = score(rows, [r.sentiment for r in results], [max(r.sentiment_scores.values()) for r in results], task)
    known = set(predictor.bundle.intent_labels if task == "intent" else predictor.bundle.sentiment_labels)
    report.unknown_labels = sorted({r.label for r in rows} - known)
    if plots is not None:
        save_plots(report, plots)
    if as_json:
        sys.stdout.write(json.dumps(report.summary()) + "\n")
        return
    table = Table(title=f"{task} evaluation on {path} ({report.n} rows)")
    for column in ("label", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, m in report.per_label.items():
        table.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    console.print(table)
    console.print(f"accuracy {report.accuracy:.4f}  macro-F1 {report.macro_f1:.4f}")
    if report.closed_set_accuracy is not None:
        console.print(f"closed-set accuracy {report.closed_set_accuracy:.4f} (top intent, no out-of-scope gate; "
                      "accuracy above is as the bot decides)")
    if report.in_scope_accuracy is not None:
        console.print(f"in-scope accuracy {report.in_scope_accuracy:.4f}  out-of-scope recall {report.oos_recall:.4f}")
    if report.unknown_labels:
        err.print(f"labels the model does not know (always counted wrong): {', '.join(report.unknown_labels)}")


@app.command()
def predict(
    model: ModelOpt,
    texts: Annotated[list[str], typer.Argument(help="Messages to classify.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Intent, confidence, out-of-scope flag and sentiment for each text."""
    predictor = _load_predictor(model, device)
    results = predictor.predict(texts)
    if as_json:
        for result in results:
            sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        return
    table = Table()
    for column in ("text", "intent", "confidence", "out of scope", "sentiment"):
        table.add_column(column)
    for r in results:
        sentiment = f"{r.sentiment} ({r.sentiment_scores[r.sentiment]:.2f})"
        table.add_row(r.text, r.intent, f"{r.confidence:.3f}", "yes" if r.out_of_scope else "no", sentiment)
    console.print(table)


@app.command()
def export(
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", help="Directory to write the exported model to.")],
    quantize: Annotated[str | None, typer.Option("--quantize", help="int8: dynamic int8 quantization.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """ONNX export for CPU serving (onnxruntime); the output directory is itself a servable model."""
    if quantize not in (None, "int8"):  # before the (slow) imports: a usage error answers at once
        raise usage(f"--quantize {quantize}: the only quantization offered is int8")
    from nlu.artifacts import ModelLoadError
    from nlu.export import export_onnx

    try:
        with err.status("exporting to ONNX" + (" and quantizing to int8" if quantize else "")):
            path = export_onnx(model, out, quantize)
    except (ModelLoadError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps({"model": str(model), "out": str(path), "onnx": str(path / "model.onnx"),
                                     "quantize": quantize}) + "\n")
        return
    console.print(f"Exported {model} to {path / 'model.onnx'}" + (f" ({quantize})" if quantize else "")
                  + f"; serve it with FRONTDESK_MODEL_DIR={path}")


@app.command()
def ensemble(
    models: Annotated[list[Path], typer.Option("--model", help="A member model directory (give two or more).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the ensemble to.")],
) -> None:
    """Average several fine-tuned models of the same labels; serve the result like any model directory."""
    from nlu.ensemble import write_ensemble

    try:
        path = write_ensemble(models, out)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    console.print(f"Ensemble of {len(models)} models written to {path}; serve it with FRONTDESK_MODEL_DIR={path}")


@app.command()
def shell(
    model: Annotated[Path | None, typer.Option("--model", envvar="FRONTDESK_MODEL_DIR")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Conversation id to continue.")] = None,
) -> None:
    """Chat with the bot in the terminal, through the same core as every channel (Ctrl-D or /quit to leave)."""
    # Not at the top: the shell builds the server's components, whose adapters/runtime/metrics.py sets up its
    # Prometheus values when imported (in files under PROMETHEUS_MULTIPROC_DIR), and `serve` must choose that
    # folder before anything in its process imports them (adapters/runtime/serving.py, _metrics_dir).
    from adapters.channels.shell import run_shell

    settings = load_settings()
    settings.model_dir = model or settings.model_dir or ensure_demo_model(settings, err)
    embedded = None
    if not settings.redis_url:
        embedded, settings.redis_url = start_embedded_redis(settings, err)
    try:
        run_shell(settings, console, user=user)
    except RuntimeError as exc:
        raise _fail(str(exc)) from None
    finally:
        if embedded is not None:
            stop_embedded_redis(embedded)


@app.command()
def run(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
) -> None:
    """Everything with embedded defaults: demo model (trained if absent), served on :8000."""
    try:
        settings = load_settings()
    except ValueError as exc:  # a refused setting (a placeholder token, ...), named without its value
        raise _fail(str(exc)) from None
    serve_forever(settings, host=host, port=port, workers=1, console=err, demo_defaults=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "0.0.0.0",
    port: Annotated[int, typer.Option("--port")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1)] = 1,
    config: Annotated[Path | None, typer.Option("--config", help="dotenv-style settings file.")] = None,
) -> None:
    """The production server: settings from the environment or --config (the environment wins)."""
    try:
        if config is not None:  # into the environment, which every worker process inherits
            err.print(f"settings from {config}: {', '.join(apply_config_file(config)) or 'none new'}",
                      markup=False, highlight=False)
        settings = load_settings()
    except ValueError as exc:  # pydantic's ValidationError is one, naming the variable
        raise _fail(str(exc)) from None
    serve_forever(settings, host=host, port=port, workers=workers, console=err)


def main() -> None:  # pragma: no cover - console-script entry
    app()


if __name__ == "__main__":  # `python -m adapters.cli.main` (`python -m adapters.cli` runs __main__.py)
    main()
