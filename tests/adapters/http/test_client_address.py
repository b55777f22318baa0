"""Who a request is counted against (adapters/http/client_address.py), attacked through real uvicorn.

The app runs on a real uvicorn server with the options `frontdesk serve` gives it (its own proxy
handling off), its lifespan off: nothing loads, the middleware and Redis are real. One extra route,
`/test/whoami`, answers what the middleware left for the routes (the settled address, `request.client`,
the scheme), so each rule is checked exactly; the floods then show what an attacker gets: 429s.

Two kinds of peer are needed. 127.0.0.1 is configured as a trusted proxy where a test needs one (so
X-Forwarded-For chains can be sent from it), together with 198.18.0.0/15 as the "internal" proxy network.
An untrusted peer that is not loopback is this machine's own non-loopback address, found at start;
the server listens on every address so both can reach it.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import uuid
from contextlib import contextmanager

import httpx
import psutil
import pytest
from fastapi import Request

from adapters.http.app import create_app
from adapters.http.client_address import resolve, settled
from adapters.runtime.settings import Settings, parse_networks
from tests.support.fleet import until
from tests.support.liveserver import uvicorn_thread
from tests.support.paths import REPO_ROOT
from tests.support.serverutil import free_port

TRUSTED = "127.0.0.1, 198.18.0.0/15"
INTERNAL = "198.18.0.9"  # a proxy inside the trusted network


def outside_address() -> str | None:
    """A non-loopback IPv4 address of this machine outside the trusted networks (a peer nobody trusts)."""
    trusted = parse_networks(TRUSTED, "test")
    for addresses in psutil.net_if_addrs().values():
        for found in addresses:
            if found.family != socket.AF_INET:
                continue
            address = ipaddress.ip_address(found.address)
            if not address.is_loopback and not any(address in network for network in trusted):
                return str(address)
    return None


@contextmanager
def server(redis_server, prefix: str, **values):
    """A bare app (see the module docstring) on 0.0.0.0; yields (port, settings)."""
    settings = Settings(REDIS_URL=f"unix://{redis_server.socket_file}", FRONTDESK_REDIS_PREFIX=prefix,
                        FRONTDESK_HOME="/nonexistent-frontdesk-home", **values)
    app = create_app(settings)

    @app.get("/test/whoami", include_in_schema=False)
    async def whoami(request: Request) -> dict:
        found = settled(request.scope)
        return {"address": found and found.address, "bucket": found and found.bucket,
                "exempt": found and found.exempt, "client": request.client.host if request.client else None,
                "scheme": request.url.scheme}

    with uvicorn_thread(app, host="0.0.0.0", lifespan="off") as (port, _):
        yield port, settings


@pytest.fixture(scope="module")
def echo(redis_server):
    """A server trusting TRUSTED, with a limit no test here reaches: for reading what the middleware settled."""
    with server(redis_server, f"echo-{uuid.uuid4().hex[:6]}", FRONTDESK_TRUSTED_PROXIES=TRUSTED,
                FRONTDESK_IP_RATE_LIMIT="100000/60") as (port, _):
        yield port


def whoami(port: int, forwarded: str | list[str] | None = None, source: str = "127.0.0.1", **headers) -> dict:
    values = [forwarded] if isinstance(forwarded, str) else forwarded or []
    sent = [("X-Forwarded-For", value) for value in values] + list(headers.items())
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as client:
        response = client.get(f"http://{source}:{port}/test/whoami", headers=sent)
    assert response.status_code == 200, response.text
    return response.json()


def test_behind_a_trusted_proxy_the_client_is_the_rightmost_untrusted_address(echo):
    assert whoami(echo, f"1.2.3.4, {INTERNAL}")["address"] == "1.2.3.4"
    # What the client wrote itself stands left of it and is ignored, however it is spread over headers.
    assert whoami(echo, f"9.9.9.9, 127.0.0.1, 1.2.3.4, {INTERNAL}")["address"] == "1.2.3.4"
    assert whoami(echo, ["9.9.9.9", f"1.2.3.4, {INTERNAL}"])["address"] == "1.2.3.4"
    assert whoami(echo, ["1.2.3.4", INTERNAL])["address"] == "1.2.3.4"
    # Routes see the same client, as uvicorn's own proxy handling would have shown it, and the proxy's scheme.
    seen = whoami(echo, "203.0.113.5", **{"X-Forwarded-Proto": "https"})
    assert seen == {"address": "203.0.113.5", "bucket": "203.0.113.5", "exempt": False, "client": "203.0.113.5",
                    "scheme": "https"}
    # Ports and brackets, as some proxies write them; IPv4-mapped IPv6 is IPv4.
    assert whoami(echo, "203.0.113.6:5050")["address"] == "203.0.113.6"
    assert whoami(echo, "[2001:db8::7]:443")["address"] == "2001:db8::7"
    assert whoami(echo, "::ffff:203.0.113.8")["address"] == "203.0.113.8"


def test_no_header_junk_or_only_trusted_hops_never_hand_the_choice_to_the_client(echo):
    # No header: the proxy itself, counted (a trusted proxy is never exempt, loopback or not).
    assert whoami(echo) == {"address": "127.0.0.1", "bucket": "127.0.0.1", "exempt": False, "client": "127.0.0.1",
                            "scheme": "http"}
    # Every hop trusted: where the request began, the leftmost.
    assert whoami(echo, f"198.18.0.5, {INTERNAL}")["address"] == "198.18.0.5"
    # Junk met before any untrusted address: the trusted hop that passed it on.
    for junk in ("unknown", "not-an-ip", "", "1.2.3", "2001:db8::zz", "1.2.3.4 5.6.7.8"):
        assert whoami(echo, junk)["address"] == "127.0.0.1", junk
        assert whoami(echo, f"1.2.3.4, {junk}, {INTERNAL}")["address"] == INTERNAL, junk
    # A forwarded loopback address is an address like any other: counted, never exempt.
    assert whoami(echo, "127.0.0.1") == {"address": "127.0.0.1", "bucket": "127.0.0.1", "exempt": False,
                                         "client": "127.0.0.1", "scheme": "http"}
    assert whoami(echo, "::1")["exempt"] is False


def test_an_untrusted_peer_is_the_client_whatever_it_forwards(echo):
    outside = outside_address()
    if outside is None:
        pytest.skip("this machine has no non-loopback IPv4 address to be an untrusted peer from")
    for forged in ("1.2.3.4", "127.0.0.1", f"1.2.3.4, {INTERNAL}", "::1"):
        seen = whoami(echo, forged, source=outside, **{"X-Forwarded-Proto": "https"})
        assert seen == {"address": outside, "bucket": outside, "exempt": False, "client": outside, "scheme": "http"}


def test_ipv6_clients_are_counted_per_64():
    assert resolve(("2001:db8:1:2::1", 1), [], []).bucket == "2001:db8:1:2::/64"
    assert resolve(("2001:db8:1:2:ffff:ffff:ffff:ffff", 1), [], []).bucket == "2001:db8:1:2::/64"
    assert resolve(("203.0.113.9", 1), [], []).bucket == "203.0.113.9"


def flood(port: int, forwarded: list[str | None], source: str = "127.0.0.1") -> list[int]:
    statuses = []
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10) as client:
        for value in forwarded:
            headers = {"X-Forwarded-For": value} if value is not None else {}
            statuses.append(client.get(f"http://{source}:{port}/test/whoami", headers=headers).status_code)
    return statuses


def test_made_up_forwarded_addresses_from_an_untrusted_peer_share_its_one_count(redis_server):
    outside = outside_address()
    if outside is None:
        pytest.skip("this machine has no non-loopback IPv4 address to be an untrusted peer from")
    prefix = f"xff-{uuid.uuid4().hex[:6]}"
    with server(redis_server, prefix, FRONTDESK_IP_RATE_LIMIT="3/60") as (port, _):  # no proxy trusted
        forged = [f"10.{i}.{i}.{i}" for i in range(4)] + ["127.0.0.1", "::1", f"1.2.3.4, {INTERNAL}"]
        assert flood(port, forged, source=outside) == [200, 200, 200] + [429] * 4
        # The count is the peer's own; none of the made-up addresses got one.
        counted = {key.decode().split("iprate:")[1].split("}")[0]
                   for key in redis_server.scan_iter(f"*{prefix}:iprate:*")}
        assert counted == {outside}
        # A real loopback peer that is not a trusted proxy (the operator's own tools) stays exempt.
        assert flood(port, [None, "1.2.3.4"] * 4) == [200] * 8


def test_a_forwarded_loopback_address_is_limited_not_exempt(redis_server):
    with server(redis_server, f"xff-{uuid.uuid4().hex[:6]}", FRONTDESK_TRUSTED_PROXIES=TRUSTED,
                FRONTDESK_IP_RATE_LIMIT="3/60") as (port, _):
        assert flood(port, ["127.0.0.1", f"127.0.0.1, {INTERNAL}", "127.0.0.1", "127.0.0.1"]) == [200] * 3 + [429]
        assert flood(port, ["::1"] * 4) == [200] * 3 + [429]


def test_the_client_behind_trusted_proxies_is_limited_however_it_pads_the_chain(redis_server):
    with server(redis_server, f"xff-{uuid.uuid4().hex[:6]}", FRONTDESK_TRUSTED_PROXIES=TRUSTED,
                FRONTDESK_IP_RATE_LIMIT="3/60") as (port, _):
        # Made-up addresses in front of the real one, a fresh one each time: all one client, 1.2.3.4.
        chains = [f"1.2.3.4, {INTERNAL}", f"6.6.6.1, 1.2.3.4, {INTERNAL}", f"127.0.0.1, 1.2.3.4, {INTERNAL}",
                  f"198.18.0.1, 1.2.3.4, {INTERNAL}", "6.6.6.2, 1.2.3.4"]
        assert flood(port, chains) == [200] * 3 + [429] * 2
        assert flood(port, [f"1.2.3.5, {INTERNAL}"]) == [200]  # another client, its own count
        # Junk in the header is counted against the hop that passed it on (here the proxy), once for all of it.
        assert flood(port, ["junk-1", "junk-2", None, "unknown", "1.2.3.6, junk-3"]) == [200] * 3 + [429] * 2


def test_ipv6_addresses_in_one_64_share_a_count_through_real_uvicorn(redis_server):
    with server(redis_server, f"xff-{uuid.uuid4().hex[:6]}", FRONTDESK_TRUSTED_PROXIES=TRUSTED,
                FRONTDESK_IP_RATE_LIMIT="3/60") as (port, _):
        one_64 = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2:abcd::9"]
        assert flood(port, one_64) == [200, 200, 200, 429]
        assert flood(port, ["2001:db8:1:3::1"]) == [200]  # the next /64 is another client


def test_the_shipped_nginx_overwrites_what_the_client_forwards(redis_server, tmp_path):
    """The compose proxy's own nginx.conf (only the bot's address, the port and the scratch paths changed) in
    front of a bot that trusts it: a made-up X-Forwarded-For per request still lands in one count, the
    address nginx saw. Appending to the client's header instead would give each request a fresh one."""
    nginx = REPO_ROOT / ".venv-tools" / "nginx" / "usr" / "sbin" / "nginx"
    if not nginx.exists():
        pytest.skip("nginx missing from .venv-tools: `make tools` unpacks Debian's")
    port = free_port()
    with server(redis_server, f"nginx-{uuid.uuid4().hex[:6]}", FRONTDESK_TRUSTED_PROXIES="127.0.0.1",
                FRONTDESK_IP_RATE_LIMIT="3/60") as (bot_port, _):
        config = (REPO_ROOT / "deploy" / "compose" / "nginx.conf").read_text()
        config = (config.replace("http://bot:8000", f"http://127.0.0.1:{bot_port}")
                  .replace("listen 8080;", f"listen 127.0.0.1:{port};").replace("/tmp/", f"{tmp_path}/"))
        (tmp_path / "nginx.conf").write_text(config)
        proxy = subprocess.Popen([str(nginx), "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr",
                                  "-g", "daemon off;"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            def up() -> bool:
                assert proxy.poll() is None, proxy.stderr.read().decode()
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/proxy-health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            until(up)
            seen = httpx.get(f"http://127.0.0.1:{port}/test/whoami?session=s3cret-in-a-url",
                             headers={"X-Forwarded-For": "1.2.3.4"}).json()
            assert seen["address"] == "127.0.0.1" and seen["exempt"] is False  # what nginx saw, counted
            statuses = [httpx.get(f"http://127.0.0.1:{port}/test/whoami",
                                  headers={"X-Forwarded-For": f"10.9.{n}.{n}"}).status_code for n in range(3)]
            assert statuses == [200, 200, 429]  # the limit is 3: the first request above was one of them
        finally:
            proxy.terminate()
            log, _ = proxy.communicate(timeout=10)
    # Its access log names method and path, never the query string.
    lines = [line for line in log.decode().splitlines() if "/test/whoami" in line]
    assert lines and not any("s3cret" in line or "?" in line for line in lines), lines
