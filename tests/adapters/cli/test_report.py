"""`frontdesk report --week [--json]` against the real app on a real uvicorn server, with conversations made
through `POST /chat`: the Markdown digest and the JSON object carry the resolution figures, per channel and
topic, CSAT and the unanswered questions; a server with clustered topics adds their top 5, one without
leaves them out."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.cli.report import digest, markdown
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

runner = CliRunner()
TOKEN = "report-token-0123456789abcdef0123456789"


@pytest.fixture(scope="module")
def server(demo_model, demo_kb, redis_server, tmp_path_factory):
    from adapters.http.app import create_app
    from adapters.runtime.components import Components
    from adapters.runtime.settings import Settings
    from nlu.engine import load_engine
    from tests.support.liveserver import uvicorn_thread

    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"report-{uuid.uuid4().hex[:8]}", FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN, FRONTDESK_DEVICE="cpu",
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_RESOLUTION_HOURS="12")
    components = Components(settings, engine=load_engine(demo_model, "cpu"), kb=demo_kb)
    with uvicorn_thread(create_app(settings, components)) as (port, _):
        deadline = time.monotonic() + 120
        while components.bot is None:
            assert time.monotonic() < deadline, "the bot did not load"
            time.sleep(0.1)
        assert components.bot.stats.resolution_s == 12 * 3600  # FRONTDESK_RESOLUTION_HOURS
        url = f"http://127.0.0.1:{port}"
        for sender, text in (("rita", "how much does standard shipping cost?"),  # resolved
                             ("sam", "how do I return an item?"), ("sam", "/human"),  # handed to staff
                             ("tom", "when will I get my refund?"), ("tom", "when will I get my refund?"),  # reopened
                             ("uma", "what is the boiling point of tungsten")):  # unanswered
            response = httpx.post(f"{url}/chat", json={"sender": sender, "message": text}, headers=CHAT_AUTH,
                                  timeout=60)
            assert response.status_code == 200, response.text
        yield url


def run_report(url: str, *args: str):
    return runner.invoke(app, ["report", "--week", "--url", url, *args], env={"FRONTDESK_ADMIN_TOKEN": TOKEN})


def test_the_weekly_digest_in_markdown_and_json(server):
    stats = httpx.get(f"{server}/admin/stats?days=7", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    resolution = stats["resolution"]
    assert {k: resolution[k] for k in ("conversations", "resolved_by_bot", "handed_to_staff", "reopened", "rate")} \
        == {"conversations": 4, "resolved_by_bot": 1, "handed_to_staff": 1, "reopened": 1, "rate": 0.25}
    assert resolution["by_channel"]["rest"]["conversations"] == 4
    assert stats["escalated_conversations"] == 1 and stats["containment_rate"] == 0.75  # the old fields, as before
    [today] = httpx.get(f"{server}/admin/stats/daily?days=1", headers={"Authorization": f"Bearer {TOKEN}"}).json()[
        "days"]
    assert today["resolution_rate"] == 0.25 and today["reopen_rate"] == round(1 / 3, 4)

    shown = run_report(server)
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert text.startswith("# Frontdesk weekly report, ")
    assert "| Conversations | 4 |" in text and "| Resolved by the bot | 1 (25.0 %) |" in text
    assert "| Handed to staff | 1 |" in text and "| Reopened | 1 (33.3 % of answered conversations) |" in text
    assert "| rest | 4 | 1 | 1 | 1 | 25.0 % | 33.3 % |" in text  # per channel
    assert "| refund-timing | 1 | 0 | 0 | 1 | 0.0 % | 100.0 % |" in text  # per topic
    assert "| shipping-costs | 1 | 1 | 0 | 0 | 100.0 % | 0.0 % |" in text
    assert "1. what is the boiling point of tungsten (1)" in text  # the top unanswered question
    assert "No ratings." in text
    # Clustered topics where the server has them (GET /admin/topics, a later change): its top 5, else no section.
    topics = httpx.get(f"{server}/admin/topics?days=7", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    clusters = [{"label": t["label"], "size": t["size"]} for t in topics.json()[:5]] \
        if topics.status_code == 200 else None
    assert ("## Unanswered topics" in text) == (clusters is not None)

    as_json = run_report(server, "--json")
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout)
    assert body["period"]["days"] == 7 and body["resolution"]["conversations"] == 4
    assert body["resolution"]["rate"] == 0.25 and body["resolution"]["reopen_rate"] == round(1 / 3, 4)
    assert body["by_channel"]["rest"]["handed_to_staff"] == 1
    assert {t["topic"]: t["reopened"] for t in body["top_topics"]}["refund-timing"] == 1
    assert body["top_unanswered"] == [{"question": "what is the boiling point of tungsten", "count": 1}]
    assert body["csat"] == {"count": 0, "average": None} and body.get("unanswered_topics") == clusters


def test_refusals_and_usage_errors_have_their_exit_codes(server):
    assert runner.invoke(app, ["report", "--url", server]).exit_code == 2  # no period
    refused = runner.invoke(app, ["report", "--week", "--url", server], env={"FRONTDESK_ADMIN_TOKEN": "x" * 40})
    assert refused.exit_code == 1 and "server answered 401" in refused.stderr
    unreachable = run_report("http://127.0.0.1:9")
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.stderr


def test_clustered_topics_are_added_when_the_server_has_them():
    stats = {"days": 7, "since": "2026-03-01", "csat": {"count": 2, "average": 4.5, "by_agent": {}},
             "top_unanswered": [["gift | wrap", 3]],
             "resolution": {"conversations": 0, "resolved_by_bot": 0, "handed_to_staff": 0, "reopened": 0,
                            "rate": None, "answered": 0, "reopen_rate": None, "by_channel": {}, "by_topic": {}}}
    found = digest(stats, [{"label": "gift wrapping", "size": 63}, {"label": "price match", "size": 41}])
    assert found["period"] == {"days": 7, "since": "2026-03-01", "until": "2026-03-07"}
    text = markdown(found)
    assert "## Unanswered topics\n\n1. gift wrapping (63 messages)\n2. price match (41 messages)" in text
    assert "| Resolved by the bot | 0 (n/a) |" in text and "2 ratings, average 4.5 of 5." in text
    assert "1. gift \\| wrap (3)" in text  # customers' words cannot break the Markdown
    assert "## Unanswered topics" not in markdown(digest(stats, None))  # a server without GET /admin/topics
