"""Hardening (docs/SECURITY.md) through the real app: body cap, per-address limit, session hashing, Origin.

The body cap is checked on a real uvicorn server over a raw socket, so "refused before it was read" is
what a client sees: the 413 arrives while most of a 10 MB body was never sent. The per-address limit is
checked on two real uvicorn servers sharing one Redis, started with the options `frontdesk serve` uses,
behind a trusted proxy; every rule of who the client is, spoofed chains included, is attacked in
tests/adapters/http/test_client_address.py.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid

import httpx
import pytest
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from adapters.channels.slack.format import escalation_message
from adapters.channels.web import session_hash
from adapters.http.app import create_app
from adapters.runtime.logs import mask
from adapters.runtime.settings import Settings
from tests.support.liveserver import uvicorn_thread
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

CAP = 64 * 1024
BEARER = f"Authorization: Bearer {CHAT_TOKEN}\r\n".encode()
AUTH = {"Authorization": "Bearer desk-token-0123456789abcdef0123456789"}  # the desk_client fixture's admin token


@pytest.fixture(scope="module")
def bare_server(redis_server, tmp_path_factory):
    """The app on a real uvicorn server with the lifespan off: nothing loads, routes and middleware are real."""
    settings = Settings(REDIS_URL=f"unix://{redis_server.socket_file}", FRONTDESK_MAX_BODY_BYTES=CAP,
                        FRONTDESK_HOME=tmp_path_factory.mktemp("home"), FRONTDESK_REDIS_PREFIX="hardening",
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN)
    with uvicorn_thread(create_app(settings), lifespan="off") as (port, _):
        yield port


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
        sock.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + BEARER +
                     b"Content-Length: 10000000\r\n\r\n" + b"{" + b" " * 4096)
        started = time.monotonic()
        assert _status(sock) == 413  # answered with 4 KB of the 10 MB sent: the rest was never waited for
        assert time.monotonic() - started < 5


def test_a_chunked_body_is_cut_off_with_413_once_it_passes_the_cap(bare_server):
    with socket.create_connection(("127.0.0.1", bare_server)) as sock:
        sock.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + BEARER +
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b" " * 16_384
        for _ in range(CAP // len(chunk) + 2):  # just past the cap; the body never ends
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        assert _status(sock) == 413


def test_a_body_under_the_cap_reaches_the_route(bare_server):
    response = httpx.post(f"http://127.0.0.1:{bare_server}/chat", json={"sender": "a", "message": "x" * 4000},
                          headers=CHAT_AUTH)
    assert response.status_code == 503 and "not loaded" in response.json()["detail"]  # the route ran
    big = httpx.post(f"http://127.0.0.1:{bare_server}/predict", content=b"[" + b"1," * CAP + b"1]",
                     headers={"content-type": "application/json"})
    assert big.status_code == 413


def test_one_address_is_limited_across_workers_others_are_not(redis_server, redis_prefix, tmp_path):
    """Two real uvicorn servers (two workers) behind one trusted proxy, 127.0.0.1, sharing one Redis; the
    client is the address the proxy forwards."""
    settings = Settings(REDIS_URL=f"unix://{redis_server.socket_file}", FRONTDESK_IP_RATE_LIMIT="3/60",
                        FRONTDESK_TRUSTED_PROXIES="127.0.0.1", FRONTDESK_HOME=tmp_path,
                        FRONTDESK_REDIS_PREFIX=redis_prefix)
    with uvicorn_thread(create_app(settings), lifespan="off") as (a, _), \
            uvicorn_thread(create_app(settings), lifespan="off") as (b, _):

        def get(port: int, client: str, path: str = "/console") -> httpx.Response:
            return httpx.get(f"http://127.0.0.1:{port}{path}", headers={"X-Forwarded-For": client}, timeout=10)

        assert [get(a, "203.0.113.7").status_code for _ in range(3)] == [200, 200, 200]
        refused = get(b, "203.0.113.7")
        assert refused.status_code == 429 and "FRONTDESK_IP_RATE_LIMIT" in refused.json()["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert get(a, "203.0.113.7", "/healthz").status_code == 200  # probes are never limited
        assert get(b, "203.0.113.8").status_code == 200
        assert get(a, "2001:db8::1").status_code == 200
        with pytest.raises(InvalidStatus) as handshake, connect(
                f"ws://127.0.0.1:{a}/web/ws", additional_headers={"X-Forwarded-For": "203.0.113.7"}, open_timeout=10):
            pass  # the socket handshake counts and is refused too
        assert handshake.value.response.status_code == 403


def test_the_web_session_id_stays_out_of_logs_admin_lists_slack_and_redis(desk_client, redis_server, caplog):
    client = desk_client()
    session = f"sess{uuid.uuid4().hex}"
    caplog.set_level(logging.INFO)
    with client.websocket_connect("/web/ws") as ws:
        ws.send_json({"type": "hello", "session": session})  # never in the URL (adapters.channels.web_guard)
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
    kinds = set()
    for key in redis_server.scan_iter(f"*{prefix}*"):
        assert session.encode() not in key
        kinds.add(redis_server.type(key))
        values = stored_values(redis_server, key)
        assert not any(session.encode() in (v or b"") for v in values), key
    assert {b"zset", b"hash", b"string"} <= kinds  # the sorted sets (pending work, the escalation index) were read
    # The same session after a reload finds its conversation: the hash is stable.
    with client.websocket_connect("/web/ws") as ws:
        ws.send_json({"type": "hello", "session": session})
        history = ws.receive_json()
        assert [e["text"] for e in history["events"]][:1] == ["/human"]


def stored_values(client, key: bytes) -> list[bytes]:
    """Everything stored under `key`, whatever its type: hash fields and values, list items, set and sorted-set
    members (with their scores), strings, stream entries. A type not listed here fails the test: it would
    otherwise be skipped unread."""
    kind = client.type(key)
    if kind == b"hash":
        return [part for pair in client.hgetall(key).items() for part in pair]
    if kind == b"list":
        return client.lrange(key, 0, -1)
    if kind == b"set":
        return list(client.smembers(key))
    if kind == b"zset":
        return [part for member, score in client.zrange(key, 0, -1, withscores=True) for part in (member,
                                                                                                   repr(score).encode())]
    if kind == b"string":
        return [client.get(key)]
    if kind == b"stream":
        return [part for _, fields in client.xrange(key) for pair in fields.items() for part in pair]
    if kind == b"none":  # expired between SCAN and TYPE
        return []
    raise AssertionError(f"{key!r} is a {kind!r}: read it here too")


def test_uvicorns_socket_log_line_is_masked():
    line = '127.0.0.1:5050 - "WebSocket /web/ws?session=Zq8f0x7Lr2mKQa9PpT" [accepted]'
    assert "Zq8f0x7Lr2mKQa9PpT" not in mask(line) and "session=[secret]" in mask(line)


def test_the_chat_socket_checks_origin(desk_client):
    client = desk_client(FRONTDESK_ALLOWED_ORIGINS="https://shop.example.com, https://www.example.com/")
    session = uuid.uuid4().hex
    for origin in ("http://testserver", "https://shop.example.com", "https://www.example.com", None):
        headers = {"origin": origin} if origin else {}
        with client.websocket_connect("/web/ws", headers=headers) as ws:
            ws.send_json({"type": "hello", "session": session})
            assert ws.receive_json()["type"] == "history", origin
    for origin in ("https://evil.example", "http://testserver.evil.example", "null"):
        with pytest.raises(WebSocketDisconnect) as refused, \
                client.websocket_connect("/web/ws", headers={"origin": origin}):
            pass
        assert refused.value.code == 1008, origin
