"""Starting real server processes for tests, and waiting for them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT  # the repository: commands run here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    """`uvicorn adapters.http.app:create_app` in its own process, settings from `env`."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process by the caller's stop_server
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "adapters.http.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-proxy-headers"],  # as `frontdesk serve` runs it
        cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
    )


def wait_ready(base_url: str, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server at {base_url} exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"server at {base_url} not ready after {timeout} s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_serving(client, seconds: float = 180) -> None:
    """Block until an in-process app (a FastAPI TestClient) is ready and its bot is built."""
    deadline = time.monotonic() + seconds
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.2)
    while client.app.state.components.bot is None:
        assert time.monotonic() < deadline, "the bot was not built"
        time.sleep(0.05)
