"""Redis clients: the one place one is made, for one server, a cluster or a Sentinel-watched master.

Kept apart from the components so a command that only needs Redis (`frontdesk staff`) imports
nothing else of the server (adapters/runtime/metrics.py above all, see adapters/cli/main.py).
"""

from __future__ import annotations

import os

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel


def redis_client(url: str, *, cluster: bool = False, sentinels: str = "",
                 sentinel_master: str = "") -> redis.Redis | redis.RedisCluster:
    """The one place a Redis client is made (docs/OPERATIONS.md "Redis").

    `url` alone: one server (`redis://`, `rediss://` for TLS, `unix://`). `cluster`: redis-py's
    cluster client, `url` naming any node. `sentinels` ("host:port,host:port") and
    `sentinel_master`: the master those sentinels name, followed across a failover; user,
    password, database and TLS come from `url`, its host is not used. Every variant retries a
    command that met a dropped connection or a timeout, with exponential backoff and jitter
    (redis-py's Retry), so a restarted node or a failover costs a pause, not an error.
    """
    # The client name shows in CLIENT LIST which Frontdesk process (worker) holds a connection.
    options = {"socket_timeout": 5, "socket_connect_timeout": 3, "client_name": f"frontdesk-{os.getpid()}",
               "retry": Retry(ExponentialWithJitterBackoff(base=0.1, cap=2.0), retries=3)}
    if cluster:
        return redis.RedisCluster.from_url(url, **options)
    if sentinels.strip():
        parsed = parse_url(url)
        tls = {k: v for k, v in parsed.items() if k.startswith("ssl_")}
        if url.startswith("rediss://"):
            tls["ssl"] = True
        addresses = [n.strip().rpartition(":") for n in sentinels.split(",") if n.strip()]
        nodes = [(host, int(port)) for host, _, port in addresses]
        sentinel = Sentinel(nodes, sentinel_kwargs={"socket_timeout": 5, "socket_connect_timeout": 3, **tls})
        credentials = {k: parsed[k] for k in ("username", "password", "db") if k in parsed}
        return sentinel.master_for(sentinel_master, health_check_interval=15, **options, **credentials, **tls)
    return redis.Redis.from_url(url, health_check_interval=15, **options)
