"""Real servers, real customer traffic and the real command line, for the replay and gate tests
(tests/system/test_replay_gate.py): a server process with its own Redis prefix, `/chat` messages that
report which FAQ entry answered, the admin routes with the admin token, and `frontdesk ...` through typer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from typer.testing import CliRunner, Result

from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.serverutil import free_port, start_server, stop_server, wait_ready

ADMIN_TOKEN = "replay-gate-admin-token-0123456789abcdef"

def write_faq(folder: Path, entries: list[dict]) -> Path:
    """A knowledge-base folder holding `entries` as its one FAQ file (rewritten in place if it exists)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "faq.yaml").write_text(yaml.safe_dump(entries, sort_keys=False))
    return folder


@dataclass(frozen=True)
class Server:
    """One `uvicorn adapters.http.app:create_app` process and the settings it was started with."""

    url: str
    env: dict[str, str]
    log: Path

    @property
    def kb(self) -> Path:
        return Path(self.env["FRONTDESK_KB"])

    # --------------------------------------------------------------- admin routes
    def admin(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", json=body, timeout=300,
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def faq_version(self) -> str:
        found = self.admin("GET", "/admin/faq")
        assert found.status_code == 200, found.text
        return found.json()["version"]["version"]

    def model_version(self) -> str:
        found = self.admin("GET", "/admin/model")
        assert found.status_code == 200, found.text
        return found.json()["version"]

    def audit(self) -> list[dict]:
        """The audit log, newest first."""
        found = self.admin("GET", "/admin/audit?limit=1000")
        assert found.status_code == 200, found.text
        return found.json()

    # --------------------------------------------------------------- customers
    def chat(self, text: str) -> dict:
        """`text` from a new customer (a fresh conversation, as a replay decides it): the first reply."""
        sent = httpx.post(f"{self.url}/chat", json={"sender": f"replay-{uuid.uuid4().hex[:12]}", "message": text},
                          headers=CHAT_AUTH, timeout=120)
        assert sent.status_code == 200, sent.text
        return sent.json()["replies"][0]

    def answered_by(self, text: str) -> str | None:
        """The FAQ entry whose answer `text` got, or None when the bot did not answer from the FAQ."""
        source = self.chat(text).get("source")
        return source["id"] if source and source.get("kind") == "faq" else None


def server_env(*, model: Path, kb: Path, redis_url: str, home: Path) -> dict[str, str]:
    """The settings of a test server (and of the command line run beside it): a Redis prefix of its own."""
    return {"FRONTDESK_MODEL_DIR": str(model), "FRONTDESK_KB": str(kb), "REDIS_URL": redis_url,
            "FRONTDESK_REDIS_PREFIX": f"replay-{uuid.uuid4().hex[:8]}", "FRONTDESK_ADMIN_TOKEN": ADMIN_TOKEN,
            "FRONTDESK_CHAT_TOKEN": CHAT_TOKEN, "FRONTDESK_HOME": str(home), "FRONTDESK_DEVICE": "cpu",
            "FRONTDESK_IP_RATE_LIMIT": "0/60", "FRONTDESK_RATE_LIMIT": "0/60"}


@contextmanager
def running_server(env: dict[str, str], log: Path, seconds: float = 240) -> Iterator[Server]:
    """A server process with `env`, yielded once its knowledge base is built and its bot answers `/chat` (a
    command, `/start`, which no replay runs again)."""
    port = free_port()
    process = start_server(env, port, log)
    try:
        server = Server(f"http://127.0.0.1:{port}", env, log)
        wait_ready(server.url, process)
        deadline = time.monotonic() + seconds
        while True:
            status = server.admin("GET", "/admin/faq")
            if status.status_code == 200 and status.json()["version"] is not None and \
                    httpx.post(f"{server.url}/chat", json={"sender": "probe", "message": "/start"},
                               headers=CHAT_AUTH, timeout=60).status_code == 200:
                break
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"not serving: {status.status_code} {status.text[:500]}"
            time.sleep(0.3)
        yield server
    finally:
        stop_server(process)


def use_settings(monkeypatch, server: Server) -> None:
    """The command line's settings = the server's (its local conversation-test run and the server agree);
    no conversation tests but those a test names with --tests."""
    for name, value in server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FRONTDESK_CONVERSATION_TESTS", raising=False)


def frontdesk(*args: str | Path) -> Result:
    """`frontdesk ARGS...` in this process, through typer (stdout and stderr kept apart, `output` both)."""
    from adapters.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
