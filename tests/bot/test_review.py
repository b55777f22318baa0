"""The review loop end to end on a tiny model: unsure messages are kept, labelled, exported, trained on,
checked against the serving model and deployed."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import INTENT_ROWS
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

TOKEN = "review-admin-token-0123456789abcdef"
CANCEL = ["cancel my subscription", "please cancel my account", "i want to cancel my plan",
          "how do i cancel my membership"]
EMAIL_TEXT = "cancel everything for jo.bloggs@example.com, card 4111 1111 1111 1111, call +44 20 7946 0958"
ENTRIES = [{"id": "hours", "question": "When are you open?", "answer": "9 to 5.",
            "alternates": ["opening hours", "what time do you close"]}]


@pytest.fixture()
def server(tiny_model, redis_url, redis_prefix, tmp_path):
    from adapters.runtime.settings import Settings
    from tests.support.liveserver import live_app

    kb = tmp_path / "faq.yaml"
    kb.write_text(yaml.safe_dump(ENTRIES))
    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, FRONTDESK_KB=kb, REDIS_URL=redis_url,
                        FRONTDESK_REDIS_PREFIX=redis_prefix, FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                        FRONTDESK_HOME=tmp_path / "home", FRONTDESK_DEVICE="cpu", FRONTDESK_IP_RATE_LIMIT="0/60",
                        FRONTDESK_REVIEW_CONFIDENCE=1.0)  # every answer is kept too: each text below is there
    with live_app(settings) as url:
        yield url


def admin(url: str, method: str, path: str, body: dict | None = None, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{url}{path}", json=body, headers=headers, timeout=120)


def chat(url: str, sender: str, text: str) -> dict:
    response = httpx.post(f"{url}/chat", json={"sender": sender, "message": text}, headers=CHAT_AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.slow
def test_unsure_messages_are_labelled_exported_trained_on_checked_and_deployed(server, tiny_data, tiny_model,
                                                                              tmp_path, monkeypatch, redis_url,
                                                                              redis_prefix):
    from adapters.cli.main import app
    from nlu.data import read_labelled_csv
    from nlu.fit import fit
    from nlu.train import TrainConfig
    from nlu.versions import model_version

    assert admin(server, "GET", "/admin/review", token=None).status_code == 401
    # The tiny model knows order_status, refund and greet: cancelling is nothing it can place.
    for i, text in enumerate(CANCEL):
        chat(server, f"cust{i}", text)
    chat(server, "cust-mail", EMAIL_TEXT)
    chat(server, "twin-a", "Cancel my subscription ")  # the same question again: one group
    items = admin(server, "GET", "/admin/review").json()
    texts = [i["text"] for i in items]
    for text in CANCEL:
        assert text in texts
    for item in items:
        assert {"id", "text", "intent", "confidence", "reason", "channel", "at", "group", "model_version"} <= set(item)
        assert item["channel"] == "rest" and item["reason"] in ("fallback", "low_confidence", "suggested", "escalated")
        assert item["intent"] in set(INTENT_ROWS) and 0 <= item["confidence"] <= 1
        assert item["model_version"] == model_version(tiny_model)
    assert items[0]["at"] >= items[-1]["at"]  # newest first
    masked = next(i for i in items if i["text"].startswith("cancel everything"))
    assert "[email]" in masked["text"] and "[card]" in masked["text"] and "[phone]" in masked["text"]
    # Everything the items hold but numbers and hashes, which may hold the digits 4111 by chance (a timestamp, a
    # confidence, the model's version id "tiny-4111e1c85d" or a group id): no customer text ever goes there.
    texts_held = json.dumps([{k: v for k, v in item.items()
                              if not isinstance(v, int | float) and k not in ("model_version", "group")}
                             for item in items])
    assert "example.com" not in texts_held and "4111" not in texts_held
    by_text = {i["text"]: i for i in items}
    twin = next(i for i in items if i["text"] == "Cancel my subscription")
    assert twin["group"] == by_text["cancel my subscription"]["group"]

    # Bad labels: unknown id 404, bad bodies 422 (naming what is wrong), unknown FAQ entry 422.
    first_id = by_text[CANCEL[1]]["id"]
    assert admin(server, "POST", "/admin/review/999999", {"intent": "cancel"}).status_code == 404
    for body in ({}, {"intent": "cancel", "dismiss": True}, {"intent": "has space"}, {"dismiss": False},
                 {"intent": "x", "extra": 1}):
        assert admin(server, "POST", f"/admin/review/{first_id}", body).status_code == 422, body
    unknown = admin(server, "POST", f"/admin/review/{first_id}", {"faq_id": "nope"})
    assert unknown.status_code == 422 and "nope" in unknown.text

    # Label: the first text with its group (the twin too), the others one by one; one FAQ label, one dismissal.
    grouped = admin(server, "POST", f"/admin/review/{by_text[CANCEL[0]]['id']}", {"intent": "cancel", "group": True})
    assert grouped.status_code == 200 and len(grouped.json()["changed"]) == 2
    for text in CANCEL[1:]:
        assert admin(server, "POST", f"/admin/review/{by_text[text]['id']}", {"intent": "cancel"}).status_code == 200
    assert admin(server, "POST", f"/admin/review/{masked['id']}", {"dismiss": True}).status_code == 200
    chat(server, "hours-q", "at what time does the shop shut on sundays")
    hours_item = admin(server, "GET", "/admin/review").json()[0]
    assert admin(server, "POST", f"/admin/review/{hours_item['id']}", {"faq_id": "hours"}).status_code == 200
    assert _inbox(redis_url, redis_prefix).faq_alternates() == {"hours": [hours_item["text"]]}
    assert hours_item["reason"] in ("fallback", "suggested")  # not answered before the label...
    assert admin(server, "POST", "/admin/faq/reload").status_code == 200  # ...the next reload adds it
    again = chat(server, "hours-q2", "at what time does the shop shut on sundays")
    assert [r["text"] for r in again["replies"]] == ["9 to 5."]
    statuses = {i["id"]: i["status"] for i in admin(server, "GET", "/admin/review").json()}
    assert statuses[masked["id"]] == "dismissed" and statuses[first_id] == "labelled"

    # Export from the terminal: text,intent of the intent labels (the twin is the same text: one row).
    monkeypatch.setenv("FRONTDESK_ADMIN_TOKEN", TOKEN)
    runner = CliRunner()
    exported = tmp_path / "labels.csv"
    result = runner.invoke(app, ["review", "export", "--out", str(exported), "--url", server])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(exported.read_text())))
    assert rows[0] == ["text", "intent"] and sorted(rows[1:]) == sorted([t, "cancel"] for t in CANCEL)
    assert admin(server, "GET", "/admin/review/export").text == exported.read_text()

    # A model trained on the original data plus the export knows "cancel".
    candidate = tmp_path / "candidate"
    examples = read_labelled_csv(tiny_data[0], "intent") + read_labelled_csv(exported, "intent")
    fit(examples, read_labelled_csv(tiny_data[1], "sentiment"), candidate,
        TrainConfig(epochs=6, batch_size=8, max_steps=24, dev_fraction=0.1, lr=1e-4, device="cpu", seed=3))
    from nlu.engine import load_predictor

    results = load_predictor(candidate, "cpu").predict(CANCEL)
    assert sum(r.intent == "cancel" for r in results) >= 3

    # model check reports the improvement on the labelled items, and what changes on recent messages.
    checked = runner.invoke(app, ["model", "check", "--candidate", str(candidate), "--url", server, "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert report["labelled"]["n"] == len(CANCEL) + 1  # the twin is labelled too
    assert report["labelled"]["serving_correct"] == 0 and report["labelled"]["candidate_correct"] >= 3
    assert report["worse"] is False and report["recent"]["n"] >= len(CANCEL)
    assert report["recent"]["intent_changed"] >= 3 and report["labelled"]["fixed"]

    # Deploy it; the old model is now worse on the labelled items: refused unless forced, saying why.
    deployed = admin(server, "POST", "/admin/model/deploy", {"path": str(candidate)})
    assert deployed.status_code == 200 and deployed.json()["version"] == model_version(candidate)
    answer = httpx.post(f"{server}/predict", json={"text": CANCEL[0]}).json()["results"][0]
    assert answer["model_version"] == model_version(candidate)
    back = admin(server, "POST", "/admin/model/deploy", {"path": str(tiny_model)})
    assert back.status_code == 409 and "worse" in back.json()["detail"]["reason"]
    refused = runner.invoke(app, ["model", "deploy", str(tiny_model), "--url", server])
    assert refused.exit_code == 1 and "worse" in refused.output and "labelled" in refused.output
    assert admin(server, "GET", "/admin/model").json()["version"] == model_version(candidate)
    forced = runner.invoke(app, ["model", "deploy", str(tiny_model), "--url", server, "--force", "--json"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["version"] == model_version(tiny_model)
    assert admin(server, "GET", "/admin/model").json()["previous"] == model_version(candidate)


def test_staff_answers_are_kept_and_a_customers_items_can_be_found_and_erased(server, redis_url, redis_prefix):
    inbox = _inbox(redis_url, redis_prefix)
    chat(server, "angry", "the parcel you sent me is broken and nobody answers")
    chat(server, "angry", "/human")
    escalation = admin(server, "GET", "/admin/escalations").json()[0]
    reply = admin(server, "POST", f"/admin/escalations/{escalation['id']}/reply", {"agent": "sam", "text": "Sorry!"})
    assert reply.status_code == 200
    items = [i for i in admin(server, "GET", "/admin/review").json() if i["reason"] == "answered_by_staff"]
    assert [i["text"] for i in items] == ["the parcel you sent me is broken and nobody answers"]
    # a second staff reply to the same customer message adds nothing
    admin(server, "POST", f"/admin/escalations/{escalation['id']}/reply", {"agent": "sam", "text": "On it."})
    assert len([i for i in admin(server, "GET", "/admin/review").json() if i["reason"] == "answered_by_staff"]) == 1

    mine = inbox.for_customer("rest", "angry")
    assert mine and all(i["user_id"] == "angry" for i in mine)
    assert inbox.erase_customer("rest", "angry") == len(mine)
    assert inbox.for_customer("rest", "angry") == []
    assert all(i["user_id"] != "angry" for i in admin(server, "GET", "/admin/review").json())


def test_items_expire_after_the_retention(redis_server, redis_prefix):
    from bot.keys import Keys
    from bot.review import ReviewInbox

    now = [1_000_000.0]
    inbox = ReviewInbox(redis_server, Keys(redis_prefix), retention_s=3600, clock=lambda: now[0])
    old = inbox.record("fallback", text="an old question", channel="rest", user_id="u1")
    now[0] += 1800
    inbox.record("fallback", text="a newer question", channel="rest", user_id="u1")
    assert [i["text"] for i in inbox.list()] == ["a newer question", "an old question"]
    now[0] += 2000  # the first is past the hour now
    assert [i["text"] for i in inbox.list()] == ["a newer question"]
    assert 0 < redis_server.ttl(Keys(redis_prefix).review("item", old)) <= 3600  # Redis drops it too


def test_a_message_handled_twice_is_one_item_and_erasure_forgets_it(redis_server, redis_prefix):
    """A worker that died after handling a message, before acknowledging it, leaves the message to be handled
    again: the review inbox keeps the first handling's item."""
    from bot.keys import Keys
    from bot.messages import InboundMessage
    from bot.review import ReviewInbox

    keys = Keys(redis_prefix)
    inbox = ReviewInbox(redis_server, keys)
    first = InboundMessage("telegram", "c1", "u9", "is the kettle in stock?", message_id="m-1", uid="d-1")
    item = inbox.record_message(first, "fallback")
    assert inbox.record_message(first, "suggested") == item  # handled again, another outcome: still one item
    other = inbox.record_message(InboundMessage("telegram", "c1", "u9", "is the kettle in stock?",
                                                message_id="m-2"), "fallback")  # the customer asked again
    no_id = InboundMessage("rest", "u9", "u9", "and the teapot?")
    assert inbox.record_message(no_id, "fallback") != inbox.record_message(no_id, "fallback")
    assert [i["id"] for i in inbox.for_customer("telegram", "u9")] == [item, other]
    assert inbox.get(item)["reason"] == "fallback"
    assert inbox.erase_customer("telegram", "u9") == 2
    assert not redis_server.exists(keys.review("seen", "telegram", "u9"))  # the message ids went with them
    assert inbox.record_message(first, "fallback") not in (item, "")  # after erasure it is new again


def _inbox(redis_url: str, prefix: str):
    """The server's review inbox, through a client of our own on the same Redis."""
    import redis

    from bot.keys import Keys
    from bot.review import ReviewInbox

    return ReviewInbox(redis.Redis.from_url(redis_url), Keys(prefix))
