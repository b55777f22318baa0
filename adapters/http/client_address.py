"""Which address a request comes from: the socket's peer, or, behind trusted reverse proxies, the client they forwarded.

The rule (FRONTDESK_TRUSTED_PROXIES, docs/SECURITY.md):

- uvicorn's own proxy handling is off wherever the app is served (`adapters.runtime.serving.UVICORN_OPTIONS`),
  so `scope["client"]` is the socket's peer. `FRONTDESK_TRUSTED_PROXIES` (addresses or CIDRs, none by
  default) is the only source of proxy trust; `FORWARDED_ALLOW_IPS` is ignored.
- A peer that is not a trusted proxy is the client, whatever its `X-Forwarded-For` says: any client can
  write that header.
- A peer that is a trusted proxy: `X-Forwarded-For` (every such header, in order, split at commas) is read
  from the right. Each trusted proxy appends the address it saw, so the first entry from the right that is
  not itself a trusted proxy is the client; whatever stands left of it was written by the client (or by
  proxies nobody trusts) and is ignored.
  - No header: the proxy itself is the client. Every entry trusted: the leftmost one (the request only
    crossed trusted machines, and that is where it began).
  - An entry that is not an IP address (`unknown`, a host name, junk), met before any untrusted one: the
    client is the trusted hop that passed it on (the entry right of it, or the peer). Only a misconfigured
    proxy forwards such a value; counting it against that proxy keeps junk from opening a fresh count per
    request, where taking the leftmost valid entry would hand the choice to the client.
- Exempt from the per-address limits: only a loopback socket peer that is not a trusted proxy (the
  operator's own tools on the host) and a peer that is no IP address (a unix socket, an in-process client).
  A forwarded address is never exempt, loopback included, and neither is anything a trusted proxy sends.
- IPv4-mapped IPv6 addresses (`::ffff:203.0.113.7`, from a dual-stack socket) are read as IPv4. Limits count
  an IPv6 client per /64 (`ClientAddress.bucket`): a subscriber is commonly given a whole /64, and counting
  single addresses would give each of them 2^64 counts.

`adapters.http.address_limit.ClientAddressLimit` settles the address once per request, before routing,
and leaves it in the scope: `settled(scope)` reads it back (the routes, the `/predict` limit, the
`client_address` of an `InboundMessage`), so every check sees the same client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from starlette.types import Scope

from adapters.runtime.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
STATE_KEY = "client_address"
IPV6_PREFIX = 64


@dataclass(frozen=True)
class ClientAddress:
    """The client a request is counted against."""

    address: str  # the client's IP address, as text
    proxied: bool  # the peer is a trusted proxy: the address is the one it forwarded (or its own, with none)
    exempt: bool  # a loopback socket peer that is not a trusted proxy: never limited

    @property
    def bucket(self) -> str:
        """What per-address limits count: an IPv4 address, or the /64 network of an IPv6 one."""
        address = ipaddress.ip_address(self.address)
        if address.version == 6:
            return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
        return self.address


def parse_address(text: str) -> IPAddress | None:
    """One address as a peer or a proxy writes it (`203.0.113.7`, `2001:db8::1`, with a port or in brackets);
    None for anything else. IPv4-mapped IPv6 becomes IPv4."""
    text = text.strip()
    if text.startswith("["):  # "[2001:db8::1]" or "[2001:db8::1]:443"
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # "203.0.113.7:5678"; an IPv6 address has at least two colons
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Every `X-Forwarded-For` entry, left to right, across repeated headers."""
    entries: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            entries += value.decode("latin-1").split(",")
    return entries


def resolve(peer: tuple | list | None, headers: Iterable[tuple[bytes, bytes]],
            trusted: Sequence[IPNetwork]) -> ClientAddress | None:
    """The client by the rule in the module docstring; None for a peer that is no IP address."""
    if not peer:
        return None
    seen = parse_address(str(peer[0]))
    if seen is None:
        return None
    if not _trusted(seen, trusted):
        return ClientAddress(str(seen), proxied=False, exempt=seen.is_loopback)
    client = seen
    for entry in reversed(forwarded_for(headers)):
        address = parse_address(entry)
        if address is None:
            break  # junk from a trusted hop: that hop is the client
        client = address
        if not _trusted(address, trusted):
            break
    return ClientAddress(str(client), proxied=True, exempt=False)


def settle(scope: Scope, trusted: Sequence[IPNetwork]) -> ClientAddress | None:
    """Resolve the request's client and leave it in the scope (`settled`). Behind a trusted proxy, as uvicorn's
    own proxy handling would: the forwarded client becomes `scope["client"]`, and the scheme the proxy was
    reached by (`X-Forwarded-Proto`, its last value) the request's scheme."""
    headers = scope.get("headers") or ()
    found = resolve(scope.get("client"), headers, trusted)
    scope.setdefault("state", {})[STATE_KEY] = found
    if found is None or not found.proxied:
        return found
    scope["client"] = (found.address, 0)
    protos = [value for name, value in headers if name.lower() == b"x-forwarded-proto"]
    proto = protos[-1].decode("latin-1").split(",")[-1].strip().lower() if protos else ""
    if proto in ("http", "https", "ws", "wss"):
        plain = proto.replace("ws", "http")
        scope["scheme"] = plain.replace("http", "ws") if scope["type"] == "websocket" else plain
    return found


def settled(scope: Scope) -> ClientAddress | None:
    """The client `settle` found for this request; None when it has none (or the app runs without the middleware)."""
    found = (scope.get("state") or {}).get(STATE_KEY)
    return found if isinstance(found, ClientAddress) else None
