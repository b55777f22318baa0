"""A conversation's lease: renewed while its holder works, and the token that fences the holder's writes.

The dispatcher takes a conversation's lease (`{p:conv:KEY}:lock`, a random token, `SET NX PX`) before it
handles that conversation's messages. While it holds it, a `Renewer` thread extends the lease every third
of its length, only while the token in Redis is still ours (compare-and-pexpire in Lua), so a slow handler
keeps its lease and a worker that died loses it within one lease. The lease being worked under is
`current` (a context variable, set by the dispatcher around the handler): the conversation store checks
its token in the same Lua step as each transcript write, so a worker that lost its lease (it stalled past
the lease, Redis was unreachable for its renewals) cannot write to the conversation after someone else
took it over, nor rewind the transcript under a live holder; the write raises `LeaseLost` instead.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from dataclasses import dataclass, field

import redis

from common.supervise import Supervised

log = logging.getLogger(__name__)

# KEYS: lock. ARGV: token, lease ms. 1 when extended, 0 when the lease is no longer ours.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end
"""


class LeaseLost(RuntimeError):
    """This worker's lease on the conversation ran out or was taken: its work on the message is discarded."""


@dataclass(eq=False)
class Lease:
    key: str  # the conversation's lock key
    token: str
    lost: threading.Event = field(default_factory=threading.Event)


current: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("frontdesk_lease", default=None)


def token_for(lock_key: str) -> str:
    """The fencing token a write to the conversation behind `lock_key` must check ('' = not under a lease)."""
    lease = current.get()
    return lease.token if lease is not None and lease.key == lock_key else ""


class Renewer:
    """One thread per dispatcher extending every lease it holds; it stops itself when none are held.

    Supervised (common.supervise): a Redis error, a cluster error or anything else restarts it after at most
    one renewal interval (a lease that failed to renew may still be ours: the next tick tries again, and the
    commit's fencing decides), so it never dies leaving the leases it holds to run out.
    """

    def __init__(self, client: redis.Redis, lease_ms: int):
        self.lease_ms = lease_ms
        self.interval = lease_ms / 3 / 1000
        self._renew = client.register_script(_RENEW)
        self._leases: set[Lease] = set()
        self._mu = threading.Lock()
        self._worker: Supervised | None = None

    def hold(self, lease: Lease) -> None:
        with self._mu:
            self._leases.add(lease)
            if self._worker is None:
                self._worker = Supervised("lease-renewer", self._run, max_backoff=self.interval,
                                          stale_after=max(60.0, 3 * self.interval)).start()

    def drop(self, lease: Lease) -> None:
        with self._mu:
            self._leases.discard(lease)

    def _run(self, worker: Supervised) -> None:
        # Renew, then wait: started again after a failure, it renews at once rather than an interval later.
        while True:
            with self._mu:
                leases = list(self._leases)
                if not leases:
                    self._worker = None
                    return
            for lease in leases:
                if not self._renew(keys=[lease.key], args=[lease.token, self.lease_ms]):
                    lease.lost.set()
                    self.drop(lease)
                    log.warning("lease lost while handling a message", extra={"lock": lease.key})
            worker.beat()
            worker.wait(self.interval)
