"""`frontdesk serve --config FILE`: the file configures every worker, and the environment wins over it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import psutil
import pytest
import yaml

from tests.adapters.runtime.test_operations import metric
from tests.support.serverutil import ROOT, free_port, stop_server, wait_ready

# Settings this test gives only through the file: none may leak in from the environment of the test run.
FILE_ONLY = ("REDIS_URL", "FRONTDESK_ADMIN_TOKEN", "FRONTDESK_CHAT_TOKEN", "FRONTDESK_MODEL_DIR", "FRONTDESK_KB",
             "FRONTDESK_HOME", "FRONTDESK_DEVICE", "REDIS_CLUSTER", "REDIS_SENTINELS", "PROMETHEUS_MULTIPROC_DIR")


def serve(args: list[str], env: dict[str, str], log) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if k not in FILE_ONLY}
    return subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", *args], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env={**clean, "HF_HUB_OFFLINE": "1", **env})


def worker_names(redis_server, serve_pid: int) -> set[int]:
    """Pids of `serve`'s worker processes that hold a connection to this Redis (named by the client factory)."""
    children = {child.pid for child in psutil.Process(serve_pid).children(recursive=True)}
    named = {client.get("name", "") for client in redis_server.client_list()}
    return {pid for pid in children if f"frontdesk-{pid}" in named}


FILE_TOKEN = "only-in-the-file-0123456789abcdef012345"
FILE_CHAT_TOKEN = "chat-only-in-the-file-0123456789abcdef"


@pytest.mark.slow
def test_two_workers_take_every_setting_from_the_file(tiny_model, redis_server, redis_url, redis_prefix, tmp_path):
    kb = tmp_path / "faq.yaml"
    kb.write_text(yaml.safe_dump([{"id": "hours", "question": "When are you open?", "answer": "9 to 5.",
                                   "alternates": ["opening hours", "what time do you close"]}]))
    config = tmp_path / "frontdesk.env"
    config.write_text(
        "# written by an operator\n"
        f"REDIS_URL={redis_url}\n"
        f"export FRONTDESK_ADMIN_TOKEN='{FILE_TOKEN}'\n"
        f"FRONTDESK_CHAT_TOKEN={FILE_CHAT_TOKEN}\n"
        f"FRONTDESK_MODEL_DIR={tiny_model}\n"
        f"FRONTDESK_KB={kb}\n"
        f"FRONTDESK_HOME={tmp_path / 'home'}\n"
        "FRONTDESK_DEVICE=cpu\n"
        "FRONTDESK_REDIS_PREFIX=from-the-file\n"  # the environment sets it too, and wins
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as log:
        process = serve(["--config", str(config), "--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
                        {"FRONTDESK_REDIS_PREFIX": redis_prefix}, log)
        try:
            wait_ready(url, process)
            # Both workers connected to the file's Redis: without the file's REDIS_URL they would have none.
            deadline = time.monotonic() + 120
            while len(worker_names(redis_server, process.pid)) < 2:
                assert time.monotonic() < deadline, "the second worker never connected to the file's Redis"
                time.sleep(0.3)
            # Every component ready in every worker (frontdesk_ready is the minimum over the running workers).
            while True:
                scrape = httpx.get(f"{url}/metrics").text
                if all(metric(scrape, "frontdesk_ready", component=c) == 1 for c in ("model", "index", "redis", "bot")):
                    break
                assert time.monotonic() < deadline, scrape
                time.sleep(0.5)
            # The admin token exists only in the file; each request on a new connection, so both workers answer.
            for _ in range(12):
                assert httpx.get(f"{url}/admin/faq", headers={"Authorization": f"Bearer {FILE_TOKEN}"}
                                 ).status_code == 200
            assert httpx.get(f"{url}/admin/faq", headers={"Authorization": "Bearer wrong"}).status_code == 401
            reply = httpx.post(f"{url}/chat", json={"sender": "ann", "message": "opening hours"},
                               headers={"Authorization": f"Bearer {FILE_CHAT_TOKEN}"}, timeout=60)
            assert reply.status_code == 200 and reply.json()["replies"], reply.text
        finally:
            stop_server(process)
    # The environment's prefix won over the file's; and no embedded Redis was started under the file's home.
    assert list(redis_server.scan_iter(match=f"{{{redis_prefix}:*", count=1000))
    assert not list(redis_server.scan_iter(match="{from-the-file:*", count=1000))
    assert not (tmp_path / "home" / "redis").exists()
    output = (tmp_path / "serve.log").read_text()
    assert "only-in-the-file" not in output  # the file's names are reported, never its values


def test_a_config_file_that_cannot_be_read_is_a_failure_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad.env"
    bad.write_text("REDIS_URL=redis://127.0.0.1:1\nthis is not a setting\n")
    for config, expected in ((bad, f"{bad}:2: not a NAME=value line"),
                             (tmp_path / "absent.env", f"config file {tmp_path / 'absent.env'} does not exist")):
        done = subprocess.run([sys.executable, "-m", "adapters.cli", "serve", "--config", str(config)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert done.returncode == 1, done.stderr
        assert expected in done.stderr and "Traceback" not in done.stderr
