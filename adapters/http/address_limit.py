"""The per-client-address request limit, in front of every route (docs/SECURITY.md), and the sliding count it keeps.

The per-customer limit (`bot.ratelimit`) is keyed on ids the client picks (`/chat`'s
`sender`, the web session), so rotating them gets round it, and it is checked inside the
conversation's lease, after the request has taken a worker thread. This one is keyed on the
address the connection comes from and runs in the ASGI layer, on the event loop, before
routing: a flood from one address is answered 429 with `Retry-After` without a thread, a
model call or a conversation lease being spent on it.

Redis-backed (`{p:iprate:ADDRESS}:SLOT`, see `bot.keys`), so the limit holds across uvicorn
workers and servers; the same two-window sliding count as `bot.ratelimit` (its `SlidingWindow`), kept by
`SlidingCount`, which `/predict`'s own limit uses too, under a key of its own. The client talks to Redis through
`redis.asyncio`, so the check never blocks the event loop. Redis being unreachable lets requests
through (logged): the per-customer limit still stands behind it, and a support desk that refuses
every customer because its limiter is down helps nobody.

The address is settled first, for every request and socket, by the rule in
`adapters.http.client_address`: the socket's peer, or behind a proxy listed in
FRONTDESK_TRUSTED_PROXIES the client it forwarded; it is left in the scope for the routes. IPv6
clients are counted per /64. Probes (`/healthz`, `/readyz`, `/metrics`) are never limited, and
neither are a loopback socket peer that is not a trusted proxy or a non-IP peer (a unix socket, an
in-process client): that traffic is the operator's own tools. A forwarded loopback address is
counted like any other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.connection import parse_url
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.http.client_address import ClientAddress, settle
from adapters.http.dependencies import app_components
from bot.keys import Keys
from bot.ratelimit import SlidingWindow

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


class SlidingCount:
    """At most `count` events per subject per `window` seconds, counted in Redis over two windows (as
    `bot.ratelimit`); `key(keys, subject, slot)` names one window's counter. One per purpose."""

    def __init__(self, key: Callable[[Keys, str, int], str]):
        self.key = key
        self._client = None
        self._loop = None
        self._warned = 0.0

    def _redis(self, settings):
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # an asyncio client belongs to one event loop
            self._client, self._loop = async_redis(settings), loop
        return self._client

    async def over(self, settings, subject: str, count: int, window: float) -> float:
        """Seconds to wait when `subject` is over the limit (this event counted); 0 when it may go on."""
        moment = SlidingWindow(time.time(), window)
        keys = Keys(settings.redis_prefix)
        current = self.key(keys, subject, moment.slot)
        try:
            pipe = self._redis(settings).pipeline(transaction=False)
            pipe.incr(current)
            pipe.expire(current, moment.ttl)
            pipe.get(self.key(keys, subject, moment.slot - 1))
            seen, _, previous = await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() - self._warned > WARN_EVERY_S:
                self._warned = time.monotonic()
                log.warning("rate limit not checked: Redis unavailable (%s)", type(exc).__name__)
            return 0.0
        return 0.0 if moment.within(seen, int(previous or 0), count) else moment.wait()


def too_many(what: str, count: int, window: float, variable: str, wait: float) -> JSONResponse:
    """The 429 a per-address limit answers: the limit, the setting that sets it, and when to come back."""
    return JSONResponse({"detail": f"too many {what} from this address; at most {count} per {window:g} s "
                                   f"({variable}); retry after {wait:.0f} s"},
                        status_code=429, headers={"Retry-After": str(int(wait))})


def limited(settings, client: ClientAddress | None, pair: tuple[int, float]) -> bool:
    """Whether a per-address limit of `pair` applies to `client` at all (on, with Redis, and not exempt)."""
    return pair[0] > 0 and bool(settings.redis_url) and client is not None and not client.exempt


class ClientAddressLimit:
    """ASGI middleware: settles the client address (`adapters.http.client_address`), then allows at most
    `count` requests (HTTP requests and web-socket connections) per client address per `window` seconds,
    shared through Redis. Settings come from the app's components."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.count = SlidingCount(Keys.client_rate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        components = app_components(scope.get("app"))
        settings = components.settings if components is not None else None
        client = settle(scope, settings.proxy_networks_list if settings is not None else [])
        if settings is None or scope["path"] in EXEMPT or not limited(settings, client, settings.ip_rate_limit_pair):
            await self.app(scope, receive, send)
            return
        count, window = settings.ip_rate_limit_pair
        wait = await self.count.over(settings, client.bucket, count, window)
        if not wait:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect; closing before accepting answers the handshake with 403
            await send({"type": "websocket.close", "code": 1008, "reason": "too many requests"})
            return
        await too_many("requests", count, window, "FRONTDESK_IP_RATE_LIMIT", wait)(scope, receive, send)
