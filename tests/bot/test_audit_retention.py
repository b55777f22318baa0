"""The audit log keeps entries for FRONTDESK_AUDIT_DAYS, however many come after them; reads that hand
customers' words out (transcripts, exports) are in it too. Real HTTP routes, a real Redis.

Before, the log was a list capped at 10,000 entries, so an agent could push an admin's entries out by
adding and deleting saved replies; `test_an_agent_flooding_the_log_does_not_push_old_entries_out` is
that attack.
"""

from __future__ import annotations

import json
import time

import pytest

from bot.audit import DAY_S, AuditLog
from bot.keys import Keys
from bot.staff import Role, StaffDirectory
from tests.support.rest import CHAT_AUTH

ADMIN = {"Authorization": "Bearer desk-token-0123456789abcdef0123456789"}  # the desk_client fixture's
FLOOD = 12_000  # more than the 10,000 entries the capped list kept
SECRET = "my parcel for Mrs Quill never came"


@pytest.fixture(scope="module")
def client(desk_client):
    return desk_client(FRONTDESK_AUDIT_DAYS="2")


def parts(client) -> tuple:
    components = client.app.state.components
    keys = Keys(components.settings.redis_prefix)
    return components.redis, keys


def agent(client, name: str) -> dict:
    redis_client, keys = parts(client)
    _, token = StaffDirectory(redis_client, keys).add(name, Role.AGENT)
    return {"Authorization": f"Bearer {token}"}


def whole_log(client) -> list[dict]:
    entries, offset = [], 0
    while page := client.get("/admin/audit", params={"limit": 1000, "offset": offset}, headers=ADMIN).json():
        entries += page
        offset += len(page)
    return entries


def test_an_agent_flooding_the_log_does_not_push_old_entries_out(client):
    assert client.post("/admin/faq/reload", headers=ADMIN).status_code == 200  # the entry the flood aims at
    flooder = agent(client, "churn")
    # The attack through the real route: saved replies added and deleted, each an entry...
    for _ in range(5):
        added = client.post("/admin/saved-replies", json={"title": "t", "text": "x"}, headers=flooder)
        assert added.status_code == 201, added.text
        assert client.delete(f"/admin/saved-replies/{added.json()['id']}", headers=flooder).status_code == 200
    # ... and at scale through the same audit call the routes make, on the same Redis.
    redis_client, keys = parts(client)
    audit = AuditLog(redis_client, keys, days=2)
    started = time.monotonic()
    for i in range(FLOOD):
        audit.record("churn", "saved-reply.delete", f"{i:x}")
    assert time.monotonic() - started < 120

    entries = whole_log(client)
    assert len(entries) >= FLOOD + 11
    oldest = entries[-1]
    assert (oldest["actor"], oldest["action"]) == ("admin", "faq.reload")
    assert [e["action"] for e in entries if e["actor"] == "churn"][-2:] == ["saved-reply.delete", "saved-reply.update"]


def test_entries_older_than_the_window_are_never_read_and_dropped_on_the_next_write(client):
    redis_client, keys = parts(client)
    now = time.time()
    # 2.5 days old: outside the 2-day window the app reads, yet inside the one the "recent" write below trims by
    # (its clock is a day back); at exactly 3 days it sat on that cut-off, and float rounding decided its fate.
    AuditLog(redis_client, keys, days=2, clock=lambda: now - 2.5 * DAY_S).record("admin", "faq.reload", "ancient")
    AuditLog(redis_client, keys, days=2, clock=lambda: now - 1 * DAY_S).record("admin", "faq.reload", "recent")
    targets = [e["target"] for e in whole_log(client)]
    assert "ancient" not in targets and "recent" in targets  # the app reads with FRONTDESK_AUDIT_DAYS=2
    assert b"ancient" in b"".join(redis_client.zrange(keys.audit("entries"), 0, 5))  # still stored ...
    assert client.post("/admin/faq/reload", headers=ADMIN).status_code == 200
    assert b"ancient" not in b"".join(redis_client.zrange(keys.audit("entries"), 0, 5))  # ... until the next entry


def test_transcript_reads_and_exports_are_audited_without_what_was_said(client):
    reader = agent(client, "reader")
    customer = "quill-7781"
    for text in (SECRET, "/human"):
        said = client.post("/chat", json={"sender": customer, "message": text}, headers=CHAT_AUTH)
        assert said.status_code == 200, said.text
    [escalation] = [e["id"] for e in client.get("/admin/escalations", headers=ADMIN).json()
                    if e["user_id"] == customer]
    for _ in range(3):  # the console re-reads an open transcript every 2 seconds: one entry, not one per poll
        assert client.get(f"/admin/escalations/{escalation}", headers=reader).status_code == 200
    assert client.get(f"/admin/escalations/{escalation}", headers=ADMIN).status_code == 200
    assert client.get("/admin/review/export", headers=reader).status_code == 200
    assert client.get(f"/admin/customers/rest/{customer}/export", headers=ADMIN).status_code == 200
    assert client.get("/admin/escalations/no-such-id", headers=reader).status_code == 404  # nothing read

    entries = client.get("/admin/audit", params={"limit": 20}, headers=ADMIN).json()
    reads = [(e["actor"], e["action"], e["target"]) for e in entries
             if e["action"] in ("transcript.read", "review.export", "customer.export")]
    assert reads[:4] == [("admin", "customer.export", reads[0][2]), ("reader", "review.export", ""),
                         ("admin", "transcript.read", escalation), ("reader", "transcript.read", escalation)]
    assert reads[0][2].startswith("rest:") and len(reads) == 4
    shown = json.dumps(entries)
    assert customer not in shown and SECRET not in shown and "Quill" not in shown


def test_the_old_capped_list_moves_into_the_log_on_upgrade(redis_server, redis_prefix):
    keys = Keys(redis_prefix)
    old = [{"at": 100.0 + i, "actor": "admin", "action": "faq.reload", "target": str(i)} for i in range(3)]
    redis_server.lpush(keys.audit("log"), *(json.dumps(e) for e in old))  # newest first, as it was kept
    audit = AuditLog(redis_server, keys, days=365, clock=lambda: 200.0)
    assert audit.entries() == old[::-1]
    assert not redis_server.exists(keys.audit("log"))
    audit.record("admin", "faq.restore")
    assert [e["target"] for e in audit.entries()] == ["", "2", "1", "0"]
