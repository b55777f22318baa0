"""Admin FAQ routes over HTTP: auth first, reload with errors, and one reload reaching two processes."""

from __future__ import annotations

import time

import httpx
import pytest
import yaml

from tests.support.serverutil import free_port, start_server, stop_server, wait_ready

TOKEN = "test-admin-token-0123456789abcdef0123"
ENTRIES = [
    {"id": "shipping", "question": "How much does shipping cost?", "answer": "Shipping is $5.95.",
     "alternates": ["what are the delivery fees", "is shipping free", "how much is postage"]},
    {"id": "returns", "question": "How do I return an item?", "answer": "Start a return within 30 days.",
     "alternates": ["can i send something back", "what is your return policy", "return a product"]},
]


@pytest.fixture()
def two_servers(tiny_model, redis_url, redis_prefix, tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "faq.yaml").write_text(yaml.safe_dump(ENTRIES))
    env = {"FRONTDESK_MODEL_DIR": str(tiny_model), "FRONTDESK_KB": str(kb), "REDIS_URL": redis_url,
           "FRONTDESK_REDIS_PREFIX": redis_prefix, "FRONTDESK_ADMIN_TOKEN": TOKEN,
           "FRONTDESK_HOME": str(tmp_path / "home"), "FRONTDESK_DEVICE": "cpu"}
    servers = []
    try:
        for i in range(2):
            port = free_port()
            servers.append((f"http://127.0.0.1:{port}", start_server(env, port, tmp_path / f"server{i}.log")))
        for url, process in servers:
            wait_ready(url, process)
        yield kb, [url for url, _ in servers]
    finally:
        for _, process in servers:
            stop_server(process)


def admin(url: str, method: str, path: str, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{url}{path}", headers=headers, timeout=60)


def test_one_reload_switches_both_processes(two_servers):
    kb, (first, second) = two_servers
    versions = {admin(url, "GET", "/admin/faq").json()["version"]["version"] for url in (first, second)}
    assert len(versions) == 1
    (old,) = versions

    # Admin routes answer 401 before looking anything up.
    for method, path in (("POST", "/admin/faq/reload"), ("GET", "/admin/faq"), ("POST", "/admin/faq/restore"),
                         ("GET", "/admin/escalations")):
        assert admin(first, method, path, token=None).status_code == 401
        assert admin(first, method, path, token="wrong").status_code == 401

    # A broken file: 422 with every problem, and both keep serving the old version.
    (kb / "broken.yaml").write_text("- id: shipping\n  question: ''\n")
    rejected = admin(first, "POST", "/admin/faq/reload")
    assert rejected.status_code == 422
    messages = {e["message"].split(" (")[0] for e in rejected.json()["errors"]}
    assert messages == {"empty or missing question", "missing answer", "duplicate id 'shipping'"}
    located = {(e["file"].rsplit("/", 1)[-1], e["line"], e["message"].split(" (")[0])
               for e in rejected.json()["errors"]}
    # broken.yaml sorts first, so the entry in faq.yaml is the duplicate.
    assert ("broken.yaml", 1, "missing answer") in located and ("faq.yaml", 1, "duplicate id 'shipping'") in located
    assert admin(second, "GET", "/admin/faq").json()["version"]["version"] == old
    (kb / "broken.yaml").unlink()

    changed = [*ENTRIES, {"id": "gift-cards", "question": "Do you sell gift cards?", "answer": "Yes.",
                          "alternates": ["gift voucher", "can i buy a gift card", "present card"]}]
    (kb / "faq.yaml").write_text(yaml.safe_dump(changed))
    reloaded = admin(first, "POST", "/admin/faq/reload")
    assert reloaded.status_code == 200, reloaded.text
    new = reloaded.json()["version"]["version"]
    assert new != old and reloaded.json()["changed"]

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = admin(second, "GET", "/admin/faq").json()
        if status["version"]["version"] == new:
            break
        time.sleep(0.2)
    assert status["version"]["version"] == new
    assert status["version"]["entries"] == 3
    # Each process reports what it serves; both are listed with the new version.
    workers = admin(first, "GET", "/admin/faq").json()["workers"]
    assert len(workers) == 2 and {w["version"] for w in workers.values()} == {new}

    restored = admin(second, "POST", "/admin/faq/restore")
    assert restored.status_code == 200 and restored.json()["version"]["version"] == old
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and admin(first, "GET", "/admin/faq").json()["version"]["version"] != old:
        time.sleep(0.2)
    assert admin(first, "GET", "/admin/faq").json()["version"]["version"] == old
    # `frontdesk faq reload` goes through the same route with the token from the environment.
    from typer.testing import CliRunner

    from adapters.cli.main import app

    cli = CliRunner().invoke(app, ["faq", "reload", "--url", first], env={"FRONTDESK_ADMIN_TOKEN": TOKEN})
    assert cli.exit_code == 0, cli.output
    assert f"now serving version {new}" in cli.output
    denied = CliRunner().invoke(app, ["faq", "reload", "--url", first], env={"FRONTDESK_ADMIN_TOKEN": "nope" * 8})
    assert denied.exit_code == 1 and "401" in denied.output  # a failure, not a usage error


DEV_QUESTIONS = """text,faq_id,tone
what do you charge to ship a lamp,shipping,calm
delivery fee for a small order?,shipping,calm
is there a charge for postage to ohio,shipping,impatient
how much will shipping be on my basket,shipping,calm
do i pay for delivery,shipping,calm
what does it cost to send my order,shipping,calm
shipping price please,shipping,calm
how much is it to have it delivered,shipping,calm
cost of delivery to my house,shipping,calm
whats the postage,shipping,calm
i want to send back the blue vase,returns,calm
the rug doesnt fit can i return it,returns,calm
how do returns work,returns,calm
can i give back a duvet i bought,returns,calm
return the chair i ordered,returns,impatient
i'd like to send the mugs back,returns,calm
how to get my item returned,returns,calm
can i return something i dont like,returns,calm
i need to return a gift,returns,calm
sending a product back how,returns,calm
what time does the football start,,calm
can you write me a poem,,calm
who is the president of france,,calm
"""


def test_a_reload_recalibrates_on_the_development_set_and_a_bad_one_changes_nothing(two_servers):
    kb, (first, _) = two_servers
    before = admin(first, "GET", "/admin/faq").json()
    assert before["thresholds"]["method"].startswith("default")  # two entries: too few generated questions
    (kb / "dev-questions.csv").write_text(DEV_QUESTIONS)
    reloaded = admin(first, "POST", "/admin/faq/reload")
    assert reloaded.status_code == 200, reloaded.text
    status = admin(first, "GET", "/admin/faq").json()
    thresholds = status["thresholds"]
    assert "dev-questions.csv: 20 covered and 3 uncovered" in thresholds["method"]
    # The 23 questions, and generated near misses making a fifth of the whole (the file marks none of its own).
    assert "6 generated near misses" in thresholds["method"] and status["calibration"] == thresholds["method"]
    measured = thresholds["measured"]
    assert measured["wrong_rate"] <= 0.05 and (measured["questions"], measured["near_misses"]) == (29, 6)
    assert status["version"]["version"] == before["version"]["version"]  # same entries; only the bars changed

    (kb / "dev-questions.csv").write_text(DEV_QUESTIONS + "where is my parcel,tracking,calm\n")
    rejected = admin(first, "POST", "/admin/faq/reload")
    assert rejected.status_code == 422
    assert [(e["file"].rsplit("/", 1)[-1], e["line"]) for e in rejected.json()["errors"]] == [
        ("dev-questions.csv", 25)]
    assert "unknown FAQ or article id(s): tracking" in rejected.json()["errors"][0]["message"]
    assert admin(first, "GET", "/admin/faq").json()["thresholds"] == thresholds
