"""The audit log over the real HTTP routes and a real Redis: one entry per admin or staff action, newest
first, naming the actor, the action and its target, never message content or a customer's id.

Staff changes made with `frontdesk staff` are audited as actor "cli" (tests/bot/test_staff.py); retention by
time, and audited reads of transcripts and exports, in tests/bot/test_audit_retention.py.
"""

from __future__ import annotations

import json

import pytest

from adapters.http.admin_gate import action_name
from bot.keys import Keys
from bot.staff import Role, StaffDirectory
from tests.support.rest import CHAT_AUTH

ADMIN = {"Authorization": "Bearer desk-token-0123456789abcdef0123456789"}  # the desk_client fixture's
SECRET_REPLY = "Your replacement ships tomorrow, Mrs Quill."


@pytest.fixture(scope="module")
def client(desk_client):
    return desk_client()


def test_every_action_is_recorded_newest_first_without_content(client):
    components = client.app.state.components
    _, token = StaffDirectory(components.redis, Keys(components.settings.redis_prefix)).add("noor", Role.AGENT)
    agent = {"Authorization": f"Bearer {token}"}
    customer = "quill-4417"
    assert client.post("/chat", json={"sender": customer, "message": "/human"}, headers=CHAT_AUTH).status_code == 200
    [escalation] = [e["id"] for e in client.get("/admin/escalations", headers=ADMIN).json()
                    if e["user_id"] == customer]

    def ok(response) -> None:
        assert response.status_code == 200, (response.request.url, response.status_code, response.text)

    ok(client.post(f"/admin/escalations/{escalation}/claim", json={}, headers=agent))
    ok(client.post(f"/admin/escalations/{escalation}/reply", json={"text": SECRET_REPLY}, headers=agent))
    ok(client.post(f"/admin/escalations/{escalation}/resolve", json={}, headers=agent))
    ok(client.post("/admin/faq/reload", headers=ADMIN))
    ok(client.get(f"/admin/customers/rest/{customer}/export", headers=ADMIN))
    ok(client.delete(f"/admin/customers/rest/{customer}", headers=ADMIN))
    # Refused or failed requests change nothing and are not actions: no entries for these.
    assert client.post("/admin/escalations/no-such-id/claim", json={}, headers=agent).status_code == 404
    assert client.post("/admin/faq/reload", headers=agent).status_code == 403
    assert client.post("/admin/faq/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
    # Reads are not actions either (the customer export, which hands data out, is the exception above).
    ok(client.get("/admin/escalations", headers=agent))
    ok(client.get("/admin/faq", headers=ADMIN))

    response = client.get("/admin/audit", headers=ADMIN)
    ok(response)
    entries = response.json()
    assert all(set(e) == {"at", "actor", "action", "target"} for e in entries)
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)  # newest first
    [erase, export, reload, resolve, reply, claim] = entries[:6]
    assert len(entries) == 6, entries
    assert (claim["actor"], claim["action"], claim["target"]) == ("noor", "escalation.claim", escalation)
    assert (reply["actor"], reply["action"], reply["target"]) == ("noor", "escalation.reply", escalation)
    assert (resolve["actor"], resolve["action"], resolve["target"]) == ("noor", "escalation.resolve", escalation)
    assert (reload["actor"], reload["action"], reload["target"]) == ("admin", "faq.reload", "")
    assert (export["actor"], export["action"]) == ("admin", "customer.export")
    assert (erase["actor"], erase["action"]) == ("admin", "customer.erase")
    # The customer is named by a pseudonym, the same in both entries; neither their id nor anything said is kept.
    assert erase["target"] == export["target"] and erase["target"].startswith("rest:")
    shown = json.dumps(entries)
    assert customer not in shown and SECRET_REPLY not in shown and "Mrs Quill" not in shown


def test_the_audit_log_is_for_admins_only(client):
    components = client.app.state.components
    _, token = StaffDirectory(components.redis, Keys(components.settings.redis_prefix)).add("ola", Role.AGENT)
    assert client.get("/admin/audit", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    assert client.get("/admin/audit").status_code == 401
    assert client.get("/admin/audit", params={"limit": 0}, headers=ADMIN).status_code == 422
    assert client.get("/admin/audit", params={"limit": 1}, headers=ADMIN).status_code == 200


@pytest.mark.parametrize(("method", "template", "action"), [
    ("POST", "/admin/escalations/{escalation_id}/claim", "escalation.claim"),
    ("POST", "/admin/faq/restore", "faq.restore"),
    ("POST", "/admin/model/deploy", "model.deploy"),
    ("POST", "/admin/model/restore", "model.restore"),
    ("POST", "/admin/review/{item_id}", "review.update"),
    ("DELETE", "/admin/replies/{reply_id}", "reply.delete"),
    ("DELETE", "/admin/customers/{channel}/{user_id}", "customer.erase"),
    ("GET", "/admin/customers/{channel}/{user_id}/export", "customer.export"),
    ("GET", "/admin/escalations/{escalation_id}", "transcript.read"),
    ("GET", "/admin/review/export", "review.export"),
    ("POST", "/admin/staff/logout", "staff.logout"),
])
def test_actions_are_named_after_the_route_so_routes_added_later_are_audited_too(method, template, action):
    assert action_name(method, template) == action
