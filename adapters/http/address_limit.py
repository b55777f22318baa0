"""The per-client-address request limit, in front of every route (docs/SECURITY.md).

The per-customer limit (`bot.ratelimit`) is keyed on ids the client picks (`/chat`'s
`sender`, the web session), so rotating them gets round it, and it is checked inside the
conversation's lease, after the request has taken a worker thread. This one is keyed on the
address the connection comes from and runs in the ASGI layer, on the event loop, before
routing: a flood from one address is answered 429 with `Retry-After` without a thread, a
model call or a conversation lease being spent on it.

Redis-backed (`{p:iprate:ADDRESS}:SLOT`, see `bot.keys`), so the limit holds across uvicorn
workers and servers; the same two-window sliding count as `bot.ratelimit`. The client talks
to Redis through `redis.asyncio`, so the check never blocks the event loop. Redis being
unreachable lets requests through (logged): the per-customer limit still stands behind it,
and a support desk that refuses every customer because its limiter is down helps nobody.

The address is the socket's peer. Behind a reverse proxy every request comes from the
proxy: start uvicorn with `--proxy-headers --forwarded-allow-ips=PROXY_IP` (or set
`FORWARDED_ALLOW_IPS`) so it takes the client from `X-Forwarded-For`, and only from that proxy.
Probes (`/healthz`, `/readyz`, `/metrics`) are never limited, and neither are loopback or
non-IP peers (a unix socket, an in-process client): that traffic is the operator's own tools or
a reverse proxy on the same host that was not told to pass the client on, where every customer
would share one count and one busy minute would lock all of them out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.connection import parse_url
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.http.dependencies import app_components
from bot.keys import Keys

log = logging.getLogger("frontdesk")

EXEMPT = ("/healthz", "/readyz", "/metrics")
WARN_EVERY_S = 60.0


def async_redis(settings):
    """A `redis.asyncio` client for the deployment the settings name (one server, cluster or Sentinel)."""
    options = {"socket_timeout": 2, "socket_connect_timeout": 2}
    if settings.redis_cluster:
        return aioredis.RedisCluster.from_url(settings.redis_url, **options)
    if settings.redis_sentinels.strip():
        parsed = parse_url(settings.redis_url)
        nodes = [(h, int(p)) for h, _, p in (n.strip().rpartition(":") for n in settings.redis_sentinels.split(",")
                                             if n.strip())]
        credentials = {k: parsed[k] for k in ("username", "password", "db") if k in parsed}
        return Sentinel(nodes, sentinel_kwargs=options).master_for(settings.redis_sentinel_master, **options,
                                                                    **credentials)
    return aioredis.Redis.from_url(settings.redis_url, **options)


def limited_address(client: tuple | None) -> str | None:
    """The address to count a request against; None for loopback and non-IP peers (see the module doc)."""
    if not client:
        return None
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return None
    return None if address.is_loopback else str(address)


class ClientAddressLimit:
    """ASGI middleware: at most `count` requests (HTTP requests and web-socket connections) per client
    address per `window` seconds, shared through Redis. Settings come from the app's components."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self._client = None
        self._loop = None
        self._warned = 0.0

    def _redis(self, settings):
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # an asyncio client belongs to one event loop
            self._client, self._loop = async_redis(settings), loop
        return self._client

    async def _over(self, settings, address: str, count: int, window: float) -> float:
        """Seconds to wait when `address` is over the limit (this request counted); 0 when it may go on."""
        now = time.time()
        slot = int(now // window)
        keys = Keys(settings.redis_prefix)
        current = keys.client_rate(address, slot)
        try:
            pipe = self._redis(settings).pipeline(transaction=False)
            pipe.incr(current)
            pipe.expire(current, int(window * 2) + 1)
            pipe.get(keys.client_rate(address, slot - 1))
            seen, _, previous = await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() - self._warned > WARN_EVERY_S:
                self._warned = time.monotonic()
                log.warning("client address limit not checked: Redis unavailable (%s)", type(exc).__name__)
            return 0.0
        overlap = 1.0 - (now % window) / window
        if seen + int(previous or 0) * overlap <= count:
            return 0.0
        # The weighted previous window shrinks as time passes; the current one empties at the next slot.
        return max(1.0, math.ceil((slot + 1) * window - now))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        components = app_components(scope.get("app"))
        settings = components.settings if components is not None else None
        count, window = settings.ip_rate_limit_pair if settings is not None else (0, 1.0)
        address = limited_address(scope.get("client"))
        if count <= 0 or not settings.redis_url or address is None:
            await self.app(scope, receive, send)
            return
        wait = await self._over(settings, address, count, window)
        if not wait:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect; closing before accepting answers the handshake with 403
            await send({"type": "websocket.close", "code": 1008, "reason": "too many requests"})
            return
        response = JSONResponse({"detail": f"too many requests from this address; at most {count} per "
                                           f"{window:g} s (FRONTDESK_IP_RATE_LIMIT); retry after {wait:.0f} s"},
                                status_code=429, headers={"Retry-After": str(int(wait))})
        await response(scope, receive, send)
