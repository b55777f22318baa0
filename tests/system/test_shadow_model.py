"""A shadow model on two real worker processes under `POST /chat` load: the replies do not change, the agreement
is reported, no request fails, and one call promotes it.

Two `uvicorn` workers serve the tiny model from one real Redis (module fixture). Customers (threads, each message
from a new sender) talk to both workers throughout; a second model, trained on other intents, is started as the
shadow through one worker's `POST /admin/model/shadow` and must reach the other one too. The tiny model and the
second one disagree on most of the load's texts and agree on the greetings, so the agreement reported has to lie
strictly between 0 and 1: a shadow that compared the serving model with itself would report 1. A candidate that
does not load is refused with 422 naming the file, and leaves whatever ran (nothing, or a running shadow) as it
was. `POST /admin/model/deploy {}` then promotes the running shadow on every worker, and the audit log has both.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.serverutil import free_port, start_server, stop_server, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ADMIN_TOKEN = "shadow-admin-token-0123456789abcdef0123"
FAQ = [{"id": "hours", "question": "When are you open?", "answer": "9 to 5.",
        "alternates": ["opening hours", "what time do you close"]},
       {"id": "refunds", "question": "How do I get a refund?", "answer": "From your account, within 30 days.",
        "alternates": ["i want my money back", "refund my purchase"]}]
# Asked before, during and after the shadow: the replies the customers get must be the same each time.
FIXED = ["When are you open?", "how do i get a refund", "hello", "where is my order", "what is the capital of france",
         "cancel my order"]
# The load: training examples of both models. "hello", "hi there" and the out-of-scope question: the same intent
# from both; "where is my order", the refund and cancel questions: intents the other model does not have.
LOAD = ["hello", "where is my order", "how do i get a refund", "hi there", "cancel my order", "opening hours",
        "i want my money back", "what is the capital of france", "track my package", "change my delivery address"]


def admin(url: str, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{url}{path}", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                         timeout=120)


def chat_serving(url: str) -> bool:
    """The worker's bot answers /chat, and its shadow routes are up (they start after the bot)."""
    try:
        return (httpx.post(f"{url}/chat", json={"sender": f"probe-{uuid.uuid4().hex}", "message": "/start"},
                           headers=CHAT_AUTH, timeout=30).status_code == 200
                and admin(url, "GET", "/admin/model/shadow").status_code == 200)
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def two_workers(tiny_model, redis_server, tmp_path_factory):
    """Two worker processes on one Redis prefix of this module's own, each answering /chat."""
    root = tmp_path_factory.mktemp("shadow-fleet")
    kb = root / "faq.yaml"
    kb.write_text(yaml.safe_dump(FAQ))
    env = {"FRONTDESK_MODEL_DIR": str(tiny_model), "FRONTDESK_KB": str(kb),
           "REDIS_URL": f"unix://{redis_server.socket_file}", "FRONTDESK_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}",
           "FRONTDESK_ADMIN_TOKEN": ADMIN_TOKEN, "FRONTDESK_CHAT_TOKEN": CHAT_TOKEN,
           "FRONTDESK_HOME": str(root / "home"), "FRONTDESK_DEVICE": "cpu",
           # The load comes from one address and a few hundred customers: neither limit may refuse it.
           "FRONTDESK_RATE_LIMIT": "0/60", "FRONTDESK_IP_RATE_LIMIT": "0/60"}
    servers = []
    try:
        for i in range(2):
            port = free_port()
            servers.append((f"http://127.0.0.1:{port}", start_server(env, port, root / f"worker{i}.log")))
        for url, process in servers:
            wait_ready(url, process)
            deadline = time.monotonic() + 120
            while not chat_serving(url):
                assert process.poll() is None and time.monotonic() < deadline, \
                    (root / f"worker{servers.index((url, process))}.log").read_text()[-3000:]
                time.sleep(0.3)
        yield [url for url, _ in servers]
    finally:
        for _, process in servers:
            stop_server(process)


def fallback_texts() -> set[str]:
    from bot.templates import Templates

    return set(Templates.load().data["fallback"])


FALLBACKS = fallback_texts()


def failure_texts() -> set[str]:
    """Replies with status 200 that mean the bot failed: the dispatcher's apology, "unavailable", "rate_limited"."""
    from bot.dispatch import APOLOGY
    from bot.templates import Templates

    wording = Templates.load().data
    return {APOLOGY, wording["unavailable"], wording["rate_limited"]}


FAILURES = failure_texts()


class Customers:
    """Every /chat message the test sends, each from a new sender (a fresh conversation: no earlier fallbacks or
    escalation keep it from being classified), counted before it leaves; failures kept."""

    def __init__(self):
        self.sent = 0
        self.failures: list[str] = []
        self._mu = threading.Lock()

    def ask(self, client: httpx.Client, url: str, text: str) -> list[tuple[str, str | None]] | None:
        """The replies to `text` as (text, FAQ source id), the fallback's random wording as one; None if it failed."""
        with self._mu:
            self.sent += 1
        try:
            response = client.post(f"{url}/chat", headers=CHAT_AUTH, json={
                "sender": f"customer-{uuid.uuid4().hex}", "message": text, "message_id": uuid.uuid4().hex})
        except httpx.HTTPError as exc:
            return self._failed(f"{url} {text!r}: {type(exc).__name__}: {exc}")
        if response.status_code != 200:
            return self._failed(f"{url} {text!r}: {response.status_code} {response.text[:200]}")
        replies = response.json()["replies"]
        if not replies or any(r["text"] in FAILURES for r in replies):
            return self._failed(f"{url} {text!r}: {replies}")
        return [("<fallback>" if r["text"] in FALLBACKS else r["text"], (r.get("source") or {}).get("id"))
                for r in replies]

    def _failed(self, why: str) -> None:
        with self._mu:
            self.failures.append(why)

    def replies(self, urls: list[str]) -> dict[tuple[str, str], list]:
        """Each FIXED text asked on each worker: its replies."""
        with httpx.Client(timeout=60) as client:
            return {(url, text): self.ask(client, url, text) for url in urls for text in FIXED}


class ChatLoad:
    """Two customer threads per worker sending LOAD until stopped, at most `per_thread` messages or `seconds` each."""

    def __init__(self, customers: Customers, urls: list[str], per_thread: int = 600, seconds: float = 150.0):
        self.customers = customers
        self.per_thread, self.seconds = per_thread, seconds
        self.answered = 0
        self._mu = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url, i), daemon=True)
                         for url in urls for i in range(2)]

    def _run(self, url: str, offset: int) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(timeout=60) as client:
            for n in range(self.per_thread):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                if self.customers.ask(client, url, LOAD[(n + offset * 5) % len(LOAD)]) is not None:
                    with self._mu:
                        self.answered += 1
                time.sleep(0.03)

    def __enter__(self) -> ChatLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)


def until(check, seconds: float, what: str):
    """`check()`'s first true value, polled; the test fails after `seconds` with `what` and the last value."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: {found}"
        time.sleep(0.25)


def serving_everywhere(url: str, version: str) -> dict | bool:
    status = admin(url, "GET", "/admin/model").json()
    return status if len(status["workers"]) == 2 and all(w["version"] == version for w in status["workers"]) \
        else False


def corrupt_copy(model: Path, folder: Path) -> Path:
    """The tiny model with garbage weights: every other file as it was (a copy: the fixture's model is shared)."""
    copy = folder / "corrupt-model"
    shutil.copytree(model, copy)
    (copy / "model.safetensors").write_bytes(b"\x00garbage, not safetensors" * 100)
    return copy


def test_a_shadow_that_does_not_load_is_refused_naming_the_file_and_nothing_starts(two_workers, tiny_model,
                                                                                    tmp_path):
    first, second = two_workers

    def starts() -> int:
        return [e["action"] for e in admin(first, "GET", "/admin/audit").json()].count("model.shadow.start")

    before, started = admin(first, "GET", "/admin/model").json()["version"], starts()
    assert admin(first, "DELETE", "/admin/model/shadow").status_code == 404  # none runs

    refused = admin(first, "POST", "/admin/model/shadow", {"path": str(corrupt_copy(tiny_model, tmp_path))})
    assert refused.status_code == 422, refused.text
    assert "model.safetensors" in refused.json()["detail"] and "nothing changed" in refused.json()["detail"]
    missing = admin(second, "POST", "/admin/model/shadow", {"path": str(tmp_path / "nowhere")})
    assert missing.status_code == 422 and "does not exist" in missing.json()["detail"], missing.text

    for url in two_workers:  # no shadow anywhere, the same model serving, and still nothing to stop
        assert admin(url, "GET", "/admin/model/shadow").json() == {"active": False}
        assert admin(url, "GET", "/admin/model").json()["version"] == before
    assert admin(second, "DELETE", "/admin/model/shadow").status_code == 404
    assert starts() == started  # a refused start is not audited as a start


def test_a_shadow_under_chat_load_changes_no_reply_reports_agreement_and_is_promoted_with_one_call(
        two_workers, tiny_model, second_model, tmp_path):
    from nlu.versions import model_version

    first, second = two_workers
    old, new = model_version(tiny_model), model_version(second_model)
    assert old != new
    until(lambda: serving_everywhere(first, old), 10, "the fleet does not serve the tiny model at the start")
    customers = Customers()
    before = customers.replies(two_workers)
    assert customers.failures == [] and all(before.values()), before
    print("replies before the shadow:", {text: before[(first, text)] for text in FIXED})
    # Both workers give each fixed text the same replies (the same model, FAQ and calibration).
    assert {text: before[(first, text)] for text in FIXED} == {text: before[(second, text)] for text in FIXED}

    with ChatLoad(customers, two_workers) as load:
        until(lambda: load.answered >= 8, 60, "the load is not answered")
        started = admin(first, "POST", "/admin/model/shadow", {"path": str(second_model)})
        assert started.status_code == 200, started.text
        record = started.json()
        assert record["version"] == new and record["path"] == str(second_model.resolve())

        # Both workers run it (the second loads it on the event or the heartbeat), and it has compared messages.
        def running() -> dict | bool:
            status = admin(second, "GET", "/admin/model/shadow").json()
            on = [w for w in status.get("workers", []) if w["running"]]
            return status if len(on) == 2 and status["compared"] > 0 else False

        shadow = until(running, 60, "the shadow is not running on both workers")
        assert shadow["active"] is True and shadow["seq"] == record["seq"] and shadow["version"] == new
        assert all(w["error"] is None for w in shadow["workers"]), shadow["workers"]

        # The shadow never answers: the same texts get the same replies as before it, on both workers.
        during = customers.replies(two_workers)
        assert during == before

        # A candidate that does not load, sent while the shadow runs: 422 naming the file, and the shadow stays.
        refused = admin(second, "POST", "/admin/model/shadow", {"path": str(corrupt_copy(tiny_model, tmp_path))})
        assert refused.status_code == 422 and "model.safetensors" in refused.json()["detail"], refused.text

        # Let every text of the load be compared a few times on both workers before reading the figures.
        until(lambda: admin(first, "GET", "/admin/model/shadow").json()["compared"] >= 4 * len(LOAD), 60,
              "the shadow compares too few messages")
        found = admin(first, "GET", "/admin/model/shadow").json()
        sent = customers.sent  # read after the figures: every message they count was sent by then
        print(f"shadow after {sent} messages sent: compared {found['compared']}, skipped {found['skipped']}, "
              f"agreement {found['agreement']}, changes {found['changes']}, latency {found['latency_ms']}")
        assert found["seq"] == record["seq"] and found["version"] == new, found
        # Each message is offered once, on the worker that answered it: compared or skipped, never both.
        assert 0 < found["compared"] <= found["compared"] + found["skipped"] <= sent, (found, sent)
        # Greetings agree, order and refund questions cannot (the candidate has no such intents).
        assert isinstance(found["agreement"], float) and 0 < found["agreement"] < 1, found
        # "opening hours" and the refund questions: a greeting or an FAQ answer from one, not from the other.
        assert 0 < found["decisions_changed"] == sum(found["changes"].values()) <= found["compared"], found
        assert found["failed"] == 0, found
        workers = {w["id"] for w in admin(first, "GET", "/admin/model").json()["workers"]}
        assert set(found["latency_ms"]) == workers and len(workers) == 2, (found["latency_ms"], workers)
        for timings in found["latency_ms"].values():
            assert timings["serving"]["p50"] > 0 and timings["candidate"]["p50"] > 0, timings

        # Promoted with one call, no path: every worker serves the candidate within seconds, and no shadow runs.
        promoted = admin(second, "POST", "/admin/model/deploy", {})
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["version"] == new and promoted.json()["path"] == record["path"]
        took = time.monotonic()
        until(lambda: serving_everywhere(first, new), 20, "the fleet does not serve the promoted model")
        print(f"promoted in {promoted.elapsed.total_seconds():.2f} s; every worker on it "
              f"{time.monotonic() - took:.2f} s later")
        for url in two_workers:
            assert admin(url, "GET", "/admin/model/shadow").json() == {"active": False}
            assert admin(url, "DELETE", "/admin/model/shadow").status_code == 404  # none runs any more
        time.sleep(1.0)  # the load goes on a moment after the swap: no request may fail across it
    assert customers.failures == [], customers.failures[:10]
    assert load.answered > 50, load.answered

    # One start and one deploy audited; the refused start during the shadow is not.
    actions = [e["action"] for e in admin(first, "GET", "/admin/audit").json()]
    assert actions.count("model.shadow.start") == 1 and actions.count("model.deploy") == 1, actions
