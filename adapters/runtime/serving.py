"""Start-up plumbing for `frontdesk run` and `serve`: config files, admin tokens and uvicorn."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from dotenv import dotenv_values
from dotenv.parser import parse_stream
from rich.console import Console

from adapters.runtime.demo_model import ensure_demo_model, ensure_demo_query_encoder
from adapters.runtime.embedded_redis import start_embedded_redis, stop_embedded_redis
from adapters.runtime.logs import logging_config
from adapters.runtime.settings import Settings, load_settings


class ConfigFileError(ValueError):
    """A `--config` file that is missing or has a line dotenv cannot read (the message names file and line)."""


def apply_config_file(path: Path) -> list[str]:
    """Put a dotenv file's variables into this process's environment, where the environment has not set them.

    Through the environment because uvicorn's workers are new processes that build the app from it: this
    way every worker, and everything that reads a variable directly (logging, Hugging Face, Prometheus),
    sees the file. The environment wins where both set a variable (docs/OPERATIONS.md). Returns the
    names taken from the file (never their values: the file holds secrets).
    """
    if not path.is_file():
        raise ConfigFileError(f"config file {path} does not exist")
    with open(path, encoding="utf-8") as handle:
        bad = [binding.original.line for binding in parse_stream(handle) if binding.error]
    if bad:
        raise ConfigFileError(f"{path}:{bad[0]}: not a NAME=value line (dotenv syntax)")
    applied = []
    for name, value in dotenv_values(path, encoding="utf-8").items():
        if value is not None and name not in os.environ:
            os.environ[name] = value
            applied.append(name)
    return applied


def resolve_model_dir(settings: Settings, console: Console | None = None) -> Path:
    return settings.model_dir or ensure_demo_model(settings, console)


def _generated_token(settings: Settings, console: Console, file: str, variable: str, what: str) -> str:
    """A token generated into a 0600 file under FRONTDESK_HOME (kept across runs); prints where it is, never
    the token itself."""
    path = settings.home / file
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")  # 43 characters: over the 32 a token needs
    path.chmod(0o600)
    console.print(f"{variable} is not set: {what} is in {path}")
    return path.read_text().strip()


def ensure_admin_token(settings: Settings, console: Console) -> str:
    """The admin token from the environment, or one generated into a 0600 file under FRONTDESK_HOME."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    return _generated_token(settings, console, "admin-token", "FRONTDESK_ADMIN_TOKEN", "the staff console token")


def ensure_chat_token(settings: Settings, console: Console) -> str:
    """The REST channel's token (`POST /chat`) from the environment, or one generated like the admin token."""
    if settings.chat_token is not None:
        return settings.chat_token.get_secret_value()
    return _generated_token(settings, console, "chat-token", "FRONTDESK_CHAT_TOKEN",
                            "the token for POST /chat (Authorization: Bearer ...)")


def cli_admin_token() -> str:
    """The token a command that talks to a running server (`faq reload`, ...) sends: FRONTDESK_ADMIN_TOKEN,
    else the one `frontdesk run` generated under FRONTDESK_HOME (so the second terminal needs no set-up).
    Raises `ValueError` saying where it looked."""
    settings = load_settings()
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    path = settings.home / "admin-token"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    raise ValueError(f"FRONTDESK_ADMIN_TOKEN is not set, and {path} (written by `frontdesk run`) does not exist")


class _Terminated(BaseException):
    """SIGTERM arrived: unwind (running `finally` blocks), then die of the signal."""


@contextmanager
def _terminate_via_finally():
    """Make SIGTERM run the `finally` blocks inside before the process dies of it.

    uvicorn shuts down gracefully on SIGTERM, restores the previous handler and raises the signal
    again; with Python's default handler the process would die right there, skipping the clean-up
    that stops the embedded Redis. Here the signal unwinds the stack instead, and is then raised
    with the default handler, so whoever sent it still sees the process end by SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _metrics_dir(workers: int):
    """A fresh PROMETHEUS_MULTIPROC_DIR for this server start when there are several workers; removed on exit.

    uvicorn's workers are processes of their own: each keeps its metrics in memory-mapped files there, and
    a scrape (answered by whichever worker the kernel picks) sums them all (adapters/runtime/metrics.py). Fresh per
    start, so nothing counted by an earlier run is added in; under an operator's PROMETHEUS_MULTIPROC_DIR
    it is a new folder inside it. One worker without that variable keeps the plain in-process registry.
    """
    parent = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    if workers <= 1 and not parent:
        yield None
        return
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="frontdesk-metrics-", dir=parent)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # set before the workers start: they inherit it
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if parent:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = parent
        else:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


# Slow or greedy clients cannot hold a worker (docs/SECURITY.md): an idle keep-alive connection is closed
# after 5 s; a request's head may buffer at most 16 KiB while it trickles in; a web-socket message at most
# 128 KiB (the chat's largest valid frame is 31,000 characters); past 2,000 open connections a worker answers
# 503 instead of queueing more; a shutdown waits at most 30 s for requests in flight. Handlers run on the
# event loop until the body is in, so a slow body holds a socket, not a thread. Behind a reverse proxy, its
# header and body timeouts (nginx: client_header_timeout, client_body_timeout) bound how long that takes.
UVICORN_LIMITS = {"timeout_keep_alive": 5, "h11_max_incomplete_event_size": 16 * 1024, "ws_max_size": 128 * 1024,
                  "limit_concurrency": 2000, "timeout_graceful_shutdown": 30}
# uvicorn's own proxy handling off (its default believes X-Forwarded-For from 127.0.0.1, and FORWARDED_ALLOW_IPS
# from any peer it names): scope["client"] stays the socket's peer, and FRONTDESK_TRUSTED_PROXIES alone decides
# whom to believe (adapters/http/client_address.py). Tests serve the app with these same options.
UVICORN_OPTIONS = {**UVICORN_LIMITS, "proxy_headers": False}


def serve_forever(settings: Settings, *, host: str, port: int, workers: int, console: Console,
                  demo_defaults: bool = False) -> None:
    """Prepare shared pieces once in this process, then hand over to uvicorn and its workers."""
    from nlu.artifacts import ModelLoadError
    from nlu.device import resolve_device
    from nlu.versions import load_checked

    model_dir = resolve_model_dir(settings, console)
    # Loaded as the workers will (an ensemble's members, the ONNX graph where they serve it), on the CPU here:
    # fail fast naming the file instead of N workers that never get ready.
    try:
        onnx_serves = settings.backend == "onnx" or str(resolve_device(settings.device)) == "cpu"
        load_checked(model_dir, "cpu", max_batch=1, backend=settings.backend if onnx_serves else "torch")
    except (ModelLoadError, ValueError) as exc:  # ValueError: FRONTDESK_DEVICE=cuda with no CUDA device
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(1) from None  # a failure, not a usage error (adapters/cli/exit_codes.py)
    # Workers are separate processes that read their settings from the environment.
    os.environ["FRONTDESK_MODEL_DIR"] = str(model_dir.resolve())
    embedded = None
    with _terminate_via_finally(), _metrics_dir(workers):
        try:
            if not settings.redis_url:
                embedded, os.environ["REDIS_URL"] = start_embedded_redis(settings, console)
            if demo_defaults:
                os.environ["FRONTDESK_ADMIN_TOKEN"] = ensure_admin_token(settings, console)
                os.environ["FRONTDESK_CHAT_TOKEN"] = ensure_chat_token(settings, console)
                os.environ.setdefault("FRONTDESK_LOG_FORMAT", "text")  # someone is watching this terminal
                if settings.query_encoder is None:  # questions embedded in int8 ONNX: a third of the time
                    encoder = ensure_demo_query_encoder(settings, console, settings.kb_source)
                    if encoder is not None:
                        os.environ["FRONTDESK_QUERY_ENCODER"] = str(encoder)
            console.print(f"Serving on http://{host}:{port} with model {model_dir} ({workers} worker(s)): "
                          f"web chat at http://{host}:{port}/, staff console at http://{host}:{port}/console")
            uvicorn.run("adapters.http.app:create_app", factory=True, host=host, port=port, workers=workers,
                        log_config=logging_config(), access_log=False, **UVICORN_OPTIONS)
        finally:
            if embedded is not None:
                stop_embedded_redis(embedded)
