"""Staff accounts and roles over the real HTTP routes, a real Redis and the real `frontdesk staff` command.

An agent's token works the escalation queue (its claims, replies and resolves recorded under the
account's name, whatever the body says) and is refused with 403 on every other /admin route, found
by walking the app's routes (so routes added later are covered); an unknown or removed token gets 401.
A token also gets 401 once its lifetime (FRONTDESK_STAFF_TOKEN_DAYS) is over, once it is signed out
(`POST /admin/staff/logout`, the console's "Sign out") and once a new one is issued.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import httpx
import pytest

from adapters.http.admin_gate import AGENT_PATHS
from bot.keys import Keys
from bot.staff import Role, StaffDirectory, token_hash
from tests.adapters.http.test_access import admin_routes
from tests.support.fleet import until
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.serverutil import ROOT

DESK_TOKEN = "desk-token-0123456789abcdef0123456789"  # the desk_client fixture's FRONTDESK_ADMIN_TOKEN
ADMIN = {"Authorization": f"Bearer {DESK_TOKEN}"}


@pytest.fixture(scope="module")
def client(desk_client):
    return desk_client()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def directory(client, **lifetime) -> StaffDirectory:
    components = client.app.state.components
    return StaffDirectory(components.redis, Keys(components.settings.redis_prefix), **lifetime)


def escalate(client, sender: str) -> str:
    """A customer asks for a person over POST /chat; the new escalation's id."""
    assert client.post("/chat", json={"sender": sender, "message": "/human"}, headers=CHAT_AUTH).status_code == 200
    [item] = [e for e in client.get("/admin/escalations", headers=ADMIN).json() if e["user_id"] == sender]
    return item["id"]


def test_an_agent_works_the_queue_under_its_own_name_and_is_refused_elsewhere(client):
    _, token = directory(client).add("kim", Role.AGENT)
    agent = bearer(token)
    assert client.get("/admin/me", headers=agent).json() == {"name": "kim", "role": "agent"}

    escalation = escalate(client, "cust-agent-1")
    # The body names someone else: with a staff token the account's name is what counts.
    claimed = client.post(f"/admin/escalations/{escalation}/claim", json={"agent": "sam"}, headers=agent)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["agent"] == "kim"
    replied = client.post(f"/admin/escalations/{escalation}/reply", json={"text": "Kim here, on it."}, headers=agent)
    assert replied.status_code == 200, replied.text
    resolved = client.post(f"/admin/escalations/{escalation}/resolve", json={}, headers=agent)
    assert resolved.json()["resolved_by"] == "kim"
    transcript = client.get(f"/admin/escalations/{escalation}", headers=agent).json()["transcript"]
    assert [e.get("by") for e in transcript if e["role"] == "agent"] == ["kim"]
    assert "claimed by kim" in [e["text"] for e in transcript] and "sam" not in json.dumps(transcript)
    assert client.get("/admin/stats", headers=agent).status_code == 200

    # Every other /admin route: 403 for the agent, before the route runs (so before anything changes).
    checked = 0
    for method, path in admin_routes(client.app):
        if path == "/admin/staff/logout":
            continue  # an agent's too, and it spends the token: test_signing_out_revokes_the_token_...
        response = client.request(method, path, json={"agent": "x", "text": "x"}, headers=agent)
        if any(path == p or path.startswith(p + "/") for p in AGENT_PATHS):
            assert response.status_code not in (401, 403), (method, path, response.status_code)
        else:
            checked += 1
            assert response.status_code == 403, (method, path, response.status_code, response.text)
            assert "admins" in response.json()["detail"]
    assert checked >= 4  # faq reload/restore/status, audit, customers' export and erase at least
    assert client.get("/admin/unknown-thing", headers=agent).status_code == 403  # the rule is the path's


def test_an_admin_member_may_use_everything_and_unknown_or_removed_tokens_get_401(client):
    staff = directory(client)
    _, token = staff.add("ada", "admin")
    assert client.get("/admin/me", headers=bearer(token)).json() == {"name": "ada", "role": "admin"}
    # Reads only: POSTs such as /admin/faq/restore or /admin/model/restore would change what other tests serve.
    for method, path in admin_routes(client.app):
        if method == "GET":
            status = client.get(path, headers=bearer(token)).status_code
            assert status not in (401, 403), (method, path, status)
    assert client.post("/admin/faq/reload", headers=bearer(token)).status_code == 200
    escalation = escalate(client, "cust-admin-1")
    assert client.post(f"/admin/escalations/{escalation}/claim", json={}, headers=bearer(token)
                       ).json()["agent"] == "ada"

    for wrong in (token + "x", token[:-1], "not-a-token", ""):
        response = client.get("/admin/me", headers=bearer(wrong))
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    staff.remove("ada")
    assert client.get("/admin/escalations", headers=bearer(token)).status_code == 401


def test_the_bootstrap_admin_token_still_names_the_agent_in_the_body(client):
    assert client.get("/admin/me", headers=ADMIN).json() == {"name": "admin", "role": "admin"}
    escalation = escalate(client, "cust-bootstrap-1")
    missing = client.post(f"/admin/escalations/{escalation}/claim", json={}, headers=ADMIN)
    assert missing.status_code == 422 and "agent" in missing.json()["detail"]
    claimed = client.post(f"/admin/escalations/{escalation}/claim", json={"agent": "sam"}, headers=ADMIN)
    assert claimed.json()["agent"] == "sam"


def test_names_are_unique_and_checked_and_tokens_are_stored_only_hashed(client):
    staff = directory(client)
    member, token = staff.add("lee", Role.AGENT)
    with pytest.raises(ValueError, match="already exists"):
        staff.add("lee", Role.ADMIN)
    for bad in ("", "admin", "cli", "x" * 65, "-dash", "new\nline", "a:b"):
        with pytest.raises(ValueError):
            staff.add(bad, Role.AGENT)
    with pytest.raises(ValueError, match="role"):
        staff.add("tom", "owner")
    assert staff.authenticate(token) == member
    stored = client.app.state.components.redis.hgetall(staff.keys.staff("members"))
    assert token.encode() not in b"".join(k + v for k, v in stored.items())


def test_a_token_stops_working_when_its_lifetime_is_over(client):
    staff = directory(client, token_days=0.00003)  # 2.6 seconds
    member, token = staff.add("brief", Role.AGENT)
    assert client.get("/admin/me", headers=bearer(token)).status_code == 200
    assert 0 < member.expires_at - member.created_at < 5
    until(lambda: client.get("/admin/me", headers=bearer(token)).status_code == 401, seconds=30)
    assert client.get("/admin/escalations", headers=bearer(token)).status_code == 401
    assert staff.get("brief") is not None  # the member stays; only the token is spent


def test_signing_out_revokes_the_token_on_the_server_and_is_audited(client):
    staff = directory(client)
    _, token = staff.add("otto", Role.AGENT)
    _, other = staff.add("pia", Role.AGENT)
    assert client.get("/admin/me", headers=bearer(token)).status_code == 200
    signed_out = client.post("/admin/staff/logout", headers=bearer(token))
    assert signed_out.status_code == 200 and signed_out.json() == {"signed_out": "otto"}
    assert client.get("/admin/me", headers=bearer(token)).status_code == 401
    assert client.post("/admin/staff/logout", headers=bearer(token)).status_code == 401
    assert client.get("/admin/me", headers=bearer(other)).status_code == 200  # another member's is untouched
    # The bootstrap token is configuration: it cannot be signed out, and it still works.
    assert client.post("/admin/staff/logout", headers=ADMIN).status_code == 409
    assert client.get("/admin/me", headers=ADMIN).status_code == 200
    # A new token for the member works; the admin-only rest of /admin/staff stays closed to agents.
    _, again = staff.reissue("otto")
    assert client.get("/admin/me", headers=bearer(again)).json() == {"name": "otto", "role": "agent"}
    assert client.get("/admin/staff/members", headers=bearer(again)).status_code == 403
    entries = client.get("/admin/audit", headers=ADMIN).json()
    assert [(e["actor"], e["target"]) for e in entries if e["action"] == "staff.logout"] == [("otto", "")]


def test_a_token_issued_before_tokens_expired_works_once_moved_and_then_expires(client):
    """Upgrading keeps existing tokens working: the old index entry moves to a key with a lifetime on first use."""
    staff = directory(client, token_days=0.00003)
    redis_client = client.app.state.components.redis
    token = "an-old-style-token-" + uuid.uuid4().hex
    digest = token_hash(token)
    redis_client.hset(staff.keys.staff("members"), "old-timer",
                      json.dumps({"role": "agent", "token_sha256": digest, "created_at": 1.0}))
    redis_client.hset(staff.keys.staff("tokens"), digest, "old-timer")
    assert staff.authenticate(token).name == "old-timer"
    assert not redis_client.hexists(staff.keys.staff("tokens"), digest)
    assert 0 < redis_client.pttl(staff.keys.staff(f"token:{digest}")) <= 3000
    until(lambda: staff.authenticate(token) is None, seconds=30)


def cli(*args: str, prefix: str, redis_url: str, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "REDIS_URL": redis_url, "FRONTDESK_REDIS_PREFIX": prefix, **env}
    return subprocess.run([sys.executable, "-m", "adapters.cli", "staff", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_frontdesk_staff_add_json_then_the_token_signs_in_and_remove_revokes_it(client, redis_url):
    prefix = client.app.state.components.settings.redis_prefix
    added = cli("add", "dana", "--role", "admin", "--json", prefix=prefix, redis_url=redis_url)
    assert added.returncode == 0, added.stderr
    created = json.loads(added.stdout)
    assert created["name"] == "dana" and created["role"] == "admin" and len(created["token"]) >= 40
    assert client.get("/admin/me", headers=bearer(created["token"])).json() == {"name": "dana", "role": "admin"}

    listed = cli("list", "--json", prefix=prefix, redis_url=redis_url)
    assert {"name": "dana", "role": "admin"}.items() <= next(m for m in json.loads(listed.stdout)
                                                             if m["name"] == "dana").items()
    assert created["token"] not in listed.stdout + listed.stderr
    assert cli("add", "dana", "--role", "agent", prefix=prefix, redis_url=redis_url).returncode == 1  # taken
    assert cli("add", "eve", "--role", "owner", prefix=prefix, redis_url=redis_url).returncode == 2  # usage
    assert cli("add", "admin", "--role", "agent", prefix=prefix, redis_url=redis_url).returncode == 2  # reserved

    # A new token, with FRONTDESK_STAFF_TOKEN_DAYS at 2.6 seconds: the old one stops at once, the new one later.
    renewed = cli("token", "dana", "--json", prefix=prefix, redis_url=redis_url, FRONTDESK_STAFF_TOKEN_DAYS="0.00003")
    assert renewed.returncode == 0, renewed.stderr
    fresh = json.loads(renewed.stdout)
    assert client.get("/admin/me", headers=bearer(created["token"])).status_code == 401
    assert client.get("/admin/me", headers=bearer(fresh["token"])).status_code == 200
    until(lambda: client.get("/admin/me", headers=bearer(fresh["token"])).status_code == 401, seconds=30)
    assert cli("token", "nobody", prefix=prefix, redis_url=redis_url).returncode == 1

    removed = cli("remove", "dana", prefix=prefix, redis_url=redis_url)
    assert removed.returncode == 0, removed.stderr
    assert client.get("/admin/me", headers=bearer(created["token"])).status_code == 401
    assert cli("remove", "dana", prefix=prefix, redis_url=redis_url).returncode == 1  # no such member

    entries = client.get("/admin/audit", headers=ADMIN).json()
    assert [(e["actor"], e["action"], e["target"]) for e in entries if e["actor"] == "cli"] == [
        ("cli", "staff.remove", "dana"), ("cli", "staff.token", "dana"), ("cli", "staff.add", "dana")]


@pytest.mark.slow
def test_without_redis_url_the_command_uses_the_embedded_redis_under_frontdesk_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({"HF_HUB_OFFLINE": "1", "FRONTDESK_HOME": str(tmp_path)})

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "adapters.cli", "staff", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)

    added = run("add", "rio", "--role", "agent", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["role"] == "agent"
    # A second process finds the member: kept in the embedded Redis's files, which it stopped on the way out.
    listed = run("list", "--json")
    assert [m["name"] for m in json.loads(listed.stdout)] == ["rio"], listed.stderr
    assert (tmp_path / "redis").is_dir()


@pytest.mark.browser
def test_an_agent_signs_in_to_the_console_with_its_token_and_claims_under_its_own_name(page, demo_model,
                                                                                        redis_server, tmp_path):
    """In a real browser on a real server: the console takes a staff token, shows whose it is, and the
    admins' panels say so instead of reporting a broken connection."""
    from playwright.sync_api import expect

    from adapters.runtime.settings import Settings
    from tests.support.liveserver import live_app

    prefix = f"staff-browser-{uuid.uuid4().hex[:8]}"
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=prefix, FRONTDESK_ADMIN_TOKEN=DESK_TOKEN,
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN, FRONTDESK_HOME=tmp_path,
                        FRONTDESK_DEVICE="cpu")
    with live_app(settings) as url:
        _, token = StaffDirectory(redis_server, Keys(prefix)).add("kim", Role.AGENT)
        sender = f"cust-{uuid.uuid4().hex[:6]}"
        assert httpx.post(f"{url}/chat", json={"sender": sender, "message": "/human"}, headers=CHAT_AUTH,
                          timeout=60).status_code == 200
        [record] = [r for r in httpx.get(f"{url}/admin/escalations", headers=ADMIN, timeout=30).json()
                    if r["user_id"] == sender]

        page.goto(f"{url}/console")
        page.fill("#signin-token", token)
        page.fill("#signin-agent", "Someone Else")
        page.click("#signin-submit")
        expect(page.locator("#console")).to_be_visible()
        expect(page.locator("#me")).to_have_text("token: kim (agent)")
        expect(page.locator("#faq-version")).to_have_text("admins only")
        page.locator(f'#queue button[data-id="{record["id"]}"]').click()
        page.click("#claim")
        expect(page.locator("#detail-status")).to_have_text("claimed")
        expect(page.locator("#connection")).to_have_text("")  # no error from the 403s of the admins' panels
        claimed = httpx.get(f"{url}/admin/escalations/{record['id']}", headers=ADMIN, timeout=30).json()
        assert (claimed["status"], claimed["agent"]) == ("claimed", "kim")

        # "Sign out" revokes the token on the server: a copy of it kept anywhere gets 401 from then on.
        page.click("#signout")
        expect(page.locator("#signin")).to_be_visible()
        until(lambda: httpx.get(f"{url}/admin/me", headers=bearer(token), timeout=30).status_code == 401)
