"""Start-up plumbing shared by `frontdesk run`, `serve` and `shell`: demo defaults and uvicorn."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from adapters.settings import Settings


@contextmanager
def _exclusive(lock_path: Path):
    """A file lock, so several workers starting together train the demo model only once."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_demo_model(settings: Settings, console: Console | None = None) -> Path:
    """Return the demo model directory, training it from the bundled demo data if absent."""
    from nlu.artifacts import REQUIRED_FILES
    from nlu.data import demo_intents_path, demo_sentiment_path, read_labelled_csv
    from nlu.fit import fit
    from nlu.progress import RichProgress
    from nlu.train import TrainConfig

    target = settings.demo_model_dir
    console = console or Console(stderr=True)

    def complete() -> bool:
        return all((target / name).is_file() for name in REQUIRED_FILES)

    if complete():
        return target
    with _exclusive(target.parent / ".demo-model.lock"):
        if complete():  # another process trained it while we waited
            return target
        console.print(f"No model yet: training the demo model into {target} (a few minutes on a CPU).")
        staging = target.parent / ".demo-model.partial"
        fit(
            read_labelled_csv(demo_intents_path(), "intent"),
            read_labelled_csv(demo_sentiment_path(), "sentiment"),
            staging,
            TrainConfig(epochs=8, augment=True, device=settings.device),
            progress=RichProgress(console, "training demo model"),
        )
        if target.exists():
            import shutil

            shutil.rmtree(target)
        os.replace(staging, target)  # the model appears complete or not at all
    return target


def resolve_model_dir(settings: Settings, console: Console | None = None) -> Path:
    return settings.model_dir or ensure_demo_model(settings, console)


def serve_forever(settings: Settings, *, host: str, port: int, workers: int, console: Console) -> None:
    """Prepare the defaults once in this process, then hand over to uvicorn."""
    import uvicorn

    from nlu.artifacts import ModelLoadError, load_bundle

    model_dir = resolve_model_dir(settings, console)
    try:
        load_bundle(model_dir)  # fail fast with a clear message instead of N crashing workers
    except ModelLoadError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None
    os.environ["FRONTDESK_MODEL_DIR"] = str(model_dir.resolve())
    console.print(f"Serving on http://{host}:{port} with model {model_dir}")
    uvicorn.run(
        "adapters.app:create_app", factory=True, host=host, port=port, workers=workers,
        log_level="info", access_log=False,
    )
