"""Every background thread of a server survives a fault, is named by `/readyz` meanwhile and counted by
`/metrics`, and works again afterwards; and a cancelled prediction leaves the engine serving.

One real app on real uvicorn, real Redis. Faults come through real parts: bad JSON published on the
live-delivery channel, values no follower can read in the model and FAQ sync keys, a sorted-set member
the sweeper cannot decode, and, through `tests.support.faults.FaultyRedis`, a cluster error (a
`RedisClusterException`, which is no `RedisError`: what ended these threads before) or any other exception
raised in one named thread's next Redis commands. The lease renewer, which runs only while a message is
being handled, is tested in tests/bot/test_leases.py; the batcher in tests/nlu/test_batching.py.
"""

from __future__ import annotations

import asyncio
import queue
import re
import uuid
from dataclasses import dataclass

import httpx
import pytest
from redis.exceptions import RedisClusterException

from adapters.http.app import create_app
from adapters.runtime.components import Components
from adapters.runtime.settings import Settings
from bot.keys import Keys
from bot.messages import Reply
from knowledge.sync import sync_key
from tests.support.faults import FaultyRedis
from tests.support.fleet import until
from tests.support.liveserver import uvicorn_thread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
TOKEN = "threads-admin-token-0123456789abcdef012"


@dataclass
class Server:
    url: str
    components: Components
    redis: FaultyRedis
    keys: Keys
    prefix: str

    def readyz(self) -> dict:
        response = httpx.get(f"{self.url}/readyz", timeout=5)
        body = response.json()
        assert (response.status_code == 200) == body["ready"]
        return body

    def metric(self, name: str, thread: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        found = re.search(rf'^{name}\{{thread="{re.escape(thread)}"\}} (\S+)$', text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def restarts(self, thread: str) -> float:
        return self.metric("frontdesk_background_thread_restarts_total", thread)


@pytest.fixture(scope="module")
def server(demo_model, demo_kb, redis_server, tmp_path_factory):
    from nlu.engine import load_engine

    prefix = f"bg{uuid.uuid4().hex[:8]}"
    client = FaultyRedis(unix_socket_path=redis_server.socket_file)
    # Short rounds, so a fault shows and heals in seconds: sweeps every 0.2 s, re-announcements checked every 0.2 s.
    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=prefix, FRONTDESK_ADMIN_TOKEN=TOKEN, FRONTDESK_DEVICE="cpu",
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_SWEEP_SECONDS=0.2,
                        FRONTDESK_REANNOUNCE_SECONDS=0.4, FRONTDESK_IP_RATE_LIMIT="0/60")
    components = Components(settings, engine=load_engine(demo_model, "cpu"), kb=demo_kb, redis=client)
    with uvicorn_thread(create_app(settings, components)) as (port, _):
        server = Server(f"http://127.0.0.1:{port}", components, client, Keys(prefix), prefix)
        until(lambda: server.readyz()["ready"] and components.bot is not None, 180)
        yield server


def named_then_healed(server: Server, thread: str, inject, repair=lambda: None) -> None:
    """`inject()` makes `thread` fail: `/readyz` names it (the worker stays ready: it is not the model's batcher)
    and the restart counter goes up; after `repair()` it runs well again, unnamed, its gauge back at 1."""
    before = server.restarts(thread)
    until(lambda: thread not in server.readyz()["degraded"], 30)  # healthy to begin with
    inject()
    seen: list[dict] = []

    def named() -> bool:
        seen.append(server.readyz())
        return thread in seen[-1]["degraded"]

    until(named, 30)
    assert seen[-1]["ready"], seen[-1]
    reason = seen[-1]["degraded"][thread]
    assert reason.startswith(("backoff", "recovering")) and "restart" in reason, reason
    until(lambda: server.restarts(thread) > before, 10)
    repair()
    until(lambda: thread not in server.readyz()["degraded"]
          and server.metric("frontdesk_background_thread_up", thread) == 1, 60)


@pytest.mark.parametrize("thread", ["sweeper", "reannounce", "kb-sync", "model-sync"])
def test_a_cluster_error_restarts_the_thread_and_readyz_names_it_meanwhile(server, thread):
    named_then_healed(server, thread, lambda: server.redis.arm(thread, RedisClusterException("injected"), count=3))
    assert server.redis.left(thread) == 0


def test_any_exception_in_the_readiness_monitor_restarts_it(server):
    # Its PING runs on a thread of its own; what that raises (beyond Redis's own errors) fails the monitor's round.
    named_then_healed(server, "readiness",
                      lambda: server.redis.arm("readiness-ping", RuntimeError("injected"), count=3))


def test_bad_json_on_the_live_delivery_channel_restarts_the_listener_and_delivery_goes_on(server):
    outbox = server.components.bot.outbox
    got: queue.SimpleQueue = queue.SimpleQueue()
    stop = outbox.watch("web:threads", got.put)
    try:
        channel = server.keys.outbox("web:threads")
        named_then_healed(server, "outbox-listener", lambda: server.redis.publish(channel, b"{not json"))

        def delivered() -> bool:  # re-subscribed after the restart: a reply published now reaches the page
            outbox.publish("web:threads", Reply("after the fault"))
            try:
                return got.get(timeout=0.2).text == "after the fault"
            except queue.Empty:
                return False

        until(delivered, 20)
    finally:
        stop()


@pytest.mark.parametrize("thread", ["kb-sync", "model-sync"])
def test_a_sync_key_no_follower_can_read_is_named_until_it_is_fixed(server, thread):
    key = sync_key(server.prefix, "desired") if thread == "kb-sync" else server.keys.model("desired")
    named_then_healed(server, thread, lambda: server.redis.set(key, "{not json"), lambda: server.redis.delete(key))
    if thread == "model-sync":  # following again: it reports the version it serves for the fleet view
        until(lambda: server.components.model_sync.workers(), 10)


def test_a_pending_member_the_sweeper_cannot_decode_is_named_until_it_is_removed(server):
    pending, member = server.keys.pending(), b"\xff\xfe not utf-8"
    named_then_healed(server, "sweeper", lambda: server.redis.zadd(pending, {member: 0}),
                      lambda: server.redis.zrem(pending, member))


def test_a_cancelled_prediction_leaves_the_engine_serving(server):
    engine = server.components.engine
    texts = [f"where is my order number {i}?" for i in range(64)]

    async def give_up() -> None:
        # A caller cancelled while its texts wait for the model (what a closed socket does to a chat handler).
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(engine.apredict(texts), timeout=0.001)

    for _ in range(5):
        asyncio.run(give_up())
    # And a /predict client that leaves mid-request, over a real socket.
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{server.url}/predict", json={"texts": texts * 4}, timeout=0.05)
    answered = httpx.post(f"{server.url}/predict", json={"texts": ["hello", "where is my order?"]}, timeout=60)
    assert answered.status_code == 200 and len(answered.json()["results"]) == 2
    assert "nlu-engine" not in server.readyz()["degraded"]
