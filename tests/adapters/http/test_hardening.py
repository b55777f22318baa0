"""Hardening (docs/SECURITY.md) through the real app: body cap, per-address limit, session hashing, Origin.

The body cap is checked on a real uvicorn server over a raw socket, so "refused before it was read" is
what a client sees: the 413 arrives while most of a 10 MB body was never sent.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid

import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from adapters.channels.slack.format import escalation_message
from adapters.channels.web import session_hash
from adapters.http.app import create_app
from adapters.runtime.logs import mask
from adapters.runtime.settings import Settings
from tests.support.serverutil import free_port

CAP = 64 * 1024
AUTH = {"Authorization": "Bearer desk-token"}


@pytest.fixture(scope="module")
def bare_server(redis_server, tmp_path_factory):
    """The app on a real uvicorn server with the lifespan off: nothing loads, routes and middleware are real."""
    settings = Settings(REDIS_URL=f"unix://{redis_server.socket_file}", FRONTDESK_MAX_BODY_BYTES=CAP,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_REDIS_PREFIX="hardening")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def _status(sock: socket.socket) -> int:
    sock.settimeout(10)
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "connection closed without an answer"
        head += chunk
    return int(head.split(b" ", 2)[1])


def test_a_10_mb_body_is_refused_with_413_before_it_is_sent(bare_server):
    with socket.create_connection(("127.0.0.1", bare_server)) as sock:
        sock.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 10000000\r\n\r\n" + b"{" + b" " * 4096)
        started = time.monotonic()
        assert _status(sock) == 413  # answered with 4 KB of the 10 MB sent: the rest was never waited for
        assert time.monotonic() - started < 5


def test_a_chunked_body_is_cut_off_with_413_once_it_passes_the_cap(bare_server):
    with socket.create_connection(("127.0.0.1", bare_server)) as sock:
        sock.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b" " * 16_384
        for _ in range(CAP // len(chunk) + 2):  # just past the cap; the body never ends
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        assert _status(sock) == 413


def test_a_body_under_the_cap_reaches_the_route(bare_server):
    import httpx

    response = httpx.post(f"http://127.0.0.1:{bare_server}/chat", json={"sender": "a", "message": "x" * 4000})
    assert response.status_code == 503 and "not loaded" in response.json()["detail"]  # the route ran
    big = httpx.post(f"http://127.0.0.1:{bare_server}/predict", content=b"[" + b"1," * CAP + b"1]",
                     headers={"content-type": "application/json"})
    assert big.status_code == 413


def test_one_address_is_limited_across_workers_others_are_not(redis_server, redis_prefix, tmp_path):
    settings = Settings(REDIS_URL=f"unix://{redis_server.socket_file}", FRONTDESK_IP_RATE_LIMIT="3/60",
                        FRONTDESK_HOME=tmp_path, FRONTDESK_REDIS_PREFIX=redis_prefix)
    worker_a, worker_b = create_app(settings), create_app(settings)  # two workers sharing one Redis
    first = TestClient(worker_a, client=("203.0.113.7", 40000))
    assert [first.get("/console").status_code for _ in range(3)] == [200, 200, 200]
    refused = TestClient(worker_b, client=("203.0.113.7", 40001)).get("/console")
    assert refused.status_code == 429 and "FRONTDESK_IP_RATE_LIMIT" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert first.get("/healthz").status_code == 200  # probes are never limited
    assert TestClient(worker_b, client=("203.0.113.8", 40002)).get("/console").status_code == 200
    assert TestClient(worker_a, client=("2001:db8::1", 1)).get("/console").status_code == 200
    assert all(TestClient(worker_a, client=("127.0.0.1", 1)).get("/console").status_code == 200 for _ in range(5))
    with pytest.raises(WebSocketDisconnect), first.websocket_connect("/web/ws?session=" + "a" * 20):
        pass  # the socket handshake counts and is refused too


def test_the_web_session_id_stays_out_of_logs_admin_lists_slack_and_redis(desk_client, redis_server, caplog):
    client = desk_client()
    session = f"sess{uuid.uuid4().hex}"
    caplog.set_level(logging.INFO)
    with client.websocket_connect(f"/web/ws?session={session}") as ws:
        assert ws.receive_json()["type"] == "history"
        ws.send_json({"type": "message", "text": "/human", "id": "m1"})
        reply = ws.receive_json()
        assert reply["type"] == "reply" and "colleague" in reply["text"]
    customer = session_hash(session)
    queue = client.get("/admin/escalations", headers=AUTH).json()
    (record,) = [r for r in queue if r["channel"] == "web"]
    assert record["user_id"] == customer and record["conversation_id"] == f"web:{customer}"
    assert session not in json.dumps(queue)
    detail = client.get(f"/admin/escalations/{record['id']}", headers=AUTH).json()
    escalation = client.app.state.components.bot.queue.get(record["id"])
    assert session not in json.dumps(escalation_message(escalation, detail["transcript"]))  # the Slack post
    assert any("message handled" in r.getMessage() for r in caplog.records)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert session not in logged and customer in logged
    prefix = client.app.state.components.settings.redis_prefix
    for key in redis_server.scan_iter(f"*{prefix}*"):
        assert session.encode() not in key
        kind = redis_server.type(key)
        values = (redis_server.hvals(key) if kind == b"hash" else redis_server.lrange(key, 0, -1) if kind == b"list"
                  else redis_server.smembers(key) if kind == b"set" else [redis_server.get(key)] if kind == b"string"
                  else [])
        assert not any(session.encode() in (v or b"") for v in values), key
    # The same session after a reload finds its conversation: the hash is stable.
    with client.websocket_connect(f"/web/ws?session={session}") as ws:
        history = ws.receive_json()
        assert [e["text"] for e in history["events"]][:1] == ["/human"]


def test_uvicorns_socket_log_line_is_masked():
    line = '127.0.0.1:5050 - "WebSocket /web/ws?session=Zq8f0x7Lr2mKQa9PpT" [accepted]'
    assert "Zq8f0x7Lr2mKQa9PpT" not in mask(line) and "session=[secret]" in mask(line)


def test_the_chat_socket_checks_origin(desk_client):
    client = desk_client(FRONTDESK_ALLOWED_ORIGINS="https://shop.example.com, https://www.example.com/")
    session = uuid.uuid4().hex
    for origin in ("http://testserver", "https://shop.example.com", "https://www.example.com", None):
        headers = {"origin": origin} if origin else {}
        with client.websocket_connect(f"/web/ws?session={session}", headers=headers) as ws:
            assert ws.receive_json()["type"] == "history", origin
    for origin in ("https://evil.example", "http://testserver.evil.example", "null"):
        with pytest.raises(WebSocketDisconnect) as refused, \
                client.websocket_connect(f"/web/ws?session={session}", headers={"origin": origin}):
            pass
        assert refused.value.code == 1008, origin
