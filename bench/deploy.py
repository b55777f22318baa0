"""How long a model deploy and a restore take, from the request to every worker serving it (issue 15).

    python -m bench.deploy                       # the demo model, `frontdesk serve --workers 2`
    python -m bench.deploy --model DIR --workers 2 --no-report

The server starts on the model given (an embedded Redis, 127.0.0.1 only); the candidate is a copy
of the same model in another directory, so it is a new version of exactly the same size. Timed:
the deploy request itself (it loads and probes the model on the worker that takes it, then
announces it), then until every worker reports the new version in `GET /admin/model`; the same
for the restore. `/predict` is called throughout, and every failed call is counted.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench._setup import REPORT_DATA, ROOT, argument_parser
from bench.load.loadgen import free_port, start, stop, wait_http
from bench.report import run_stamp, table, write_section

RESULTS = REPORT_DATA / "deploy.json"
TOKEN = "bench-deploy-token-0123456789abcdef0123"


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def until_everyone_serves(client: httpx.Client, version: str, workers: int, limit: float = 120.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        listed = client.get("/admin/model").json()["workers"]
        if len(listed) >= workers and all(w["version"] == version for w in listed):
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"not every worker serves {version} after {limit} s")


class Predicting:
    """`/predict` calls in a loop while the fleet switches; failures counted."""

    def __init__(self, url: str):
        self.url, self.calls, self.failures = url, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    ok = client.post("/predict", json={"text": "where is my order"}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.calls += 1
                self.failures += not ok

    def __enter__(self) -> Predicting:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the demo model)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-report", action="store_true", help="print only; do not touch docs/")
    args = parser.parse_args()

    from adapters.runtime.demo_model import ensure_demo_model
    from adapters.runtime.settings import Settings

    model = (args.model or ensure_demo_model(Settings(FRONTDESK_HOME=ROOT / ".frontdesk",
                                                      FRONTDESK_DEVICE="cpu"))).resolve()
    work = Path(tempfile.mkdtemp(prefix="frontdesk-deploy-"))
    candidate = work / "candidate"
    shutil.copytree(model, candidate)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FRONTDESK_MODEL_DIR": str(model), "FRONTDESK_HOME": str(work),
           "REDIS_URL": "", "FRONTDESK_DEVICE": "cpu", "FRONTDESK_LOG_LEVEL": "WARNING",
           "FRONTDESK_ADMIN_TOKEN": TOKEN}
    server = start([sys.executable, "-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", str(args.workers)], env, Path("/tmp/frontdesk-deploy.log"), ROOT)
    try:
        wait_http(f"{url}/readyz", server, consecutive=args.workers)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=300) as client, Predicting(url) as load:
            old = client.get("/admin/model").json()["version"]
            until_everyone_serves(client, old, args.workers)
            started = time.monotonic()
            answer = client.post("/admin/model/deploy", json={"path": str(candidate), "force": True})
            answer.raise_for_status()
            deploy_request = time.monotonic() - started
            new = answer.json()["version"]
            deploy_all = deploy_request + until_everyone_serves(client, new, args.workers)
            started = time.monotonic()
            client.post("/admin/model/restore").raise_for_status()
            restore_request = time.monotonic() - started
            restore_all = restore_request + until_everyone_serves(client, old, args.workers)
        result = {"workers": args.workers, "model_mb": round(size_mb(model), 1), "deploy_request_s": deploy_request,
                  "deploy_all_workers_s": deploy_all, "restore_request_s": restore_request,
                  "restore_all_workers_s": restore_all, "predict_calls": load.calls,
                  "predict_failures": load.failures, "from": old, "to": new}
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.no_report:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    rows = [["deploy", result["workers"], result["model_mb"], f"{deploy_request:.1f}", f"{deploy_all:.1f}"],
            ["restore", result["workers"], result["model_mb"], f"{restore_request:.1f}", f"{restore_all:.1f}"]]
    write_section("deploy", "## Model deploy and restore, every worker (`python -m bench.deploy`)\n\n"
                  + run_stamp() + "\n"
                  + table(["action", "workers", "model MB", "request s", "until every worker serves it, s"], rows)
                  + f"\n`frontdesk serve --workers {result['workers']}` on the demo model; the candidate is a copy "
                    "of it in another directory (a new version of the same size). The request loads and probes "
                    "the model on the worker that takes it; the others load it beside the serving one when "
                    f"they hear of it. `/predict` was called throughout: {load.calls} calls, "
                    f"{load.failures} failed.\n")


if __name__ == "__main__":
    main()
