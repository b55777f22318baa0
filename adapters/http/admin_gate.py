"""Who may use `/admin/...`: the bearer-token gate in front of every admin path, and the audit log behind it.

Every request under /admin carries `Authorization: Bearer TOKEN`: `FRONTDESK_ADMIN_TOKEN` (the
bootstrap admin, actor "admin") or a staff member's token (`bot.staff`, actor = the member's name; it
works until it expires, FRONTDESK_STAFF_TOKEN_DAYS, or is signed out with `POST /admin/staff/logout`).
`TimingAndAdminGate` (adapters/http/app.py) calls `gate` before routing, so an unknown or missing token
gets 401 whatever the path, and an agent gets 403 outside `AGENT_PATHS`: a rule on the path prefix,
so a route added later under /admin is admin-only unless it is added there. After the response it
calls `audit`, which records every successful change (any method but GET/HEAD/OPTIONS) and the reads
listed in `AUDITED_READS` (a transcript opened, a customer's data or the labels exported) in the audit
log (`bot.audit`), with an action named after the route.
Routers under /admin depend on `require_actor` (staff) or `require_admin` (admins only).
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import Scope

from adapters.http.api_gate import bearer
from adapters.http.dependencies import admin_services, get_components
from bot.staff import Role

log = logging.getLogger("frontdesk")

# "/admin/review/export" and "/admin/review/{id}".
AGENT_PATHS = ("/admin/escalations", "/admin/review", "/admin/stats", "/admin/me", "/admin/topics",
               "/admin/saved-replies",  # the console's saved replies (adapters/http/desk_admin.py)
               "/admin/staff/logout")  # signing one's own token out; the rest of /admin/staff is for admins
# Reads that are audited although they change nothing: they hand personal data out.
AUDITED_READS = {"/admin/customers/{channel}/{user_id}/export": "customer.export",
                 "/admin/escalations/{escalation_id}": "transcript.read",
                 "/admin/review/export": "review.export"}
# Reads the console repeats while it shows them (it re-reads an open transcript every 2 s): recorded once per
# actor and target in this many seconds, so the log says who looked at what without an entry per poll.
REPEATED_READS_S = {"transcript.read": 600}
# Actions named explicitly where the route's own words would not say what happened.
ACTIONS = {("DELETE", "/admin/customers/{channel}/{user_id}"): "customer.erase",
           ("POST", "/admin/model/shadow"): "model.shadow.start",
           ("DELETE", "/admin/model/shadow"): "model.shadow.stop"}


@dataclass(frozen=True)
class Actor:
    """Who is acting: the bootstrap admin (FRONTDESK_ADMIN_TOKEN) or a staff member."""

    name: str
    role: Role
    bootstrap: bool = False


def supplied_token(request: Request) -> str | None:
    """The bearer token the request carries (what `gate` checked), for the route that signs it out."""
    return bearer(request.scope)


def is_admin(request: Request) -> bool:
    """True when the request carries the bootstrap admin token (compared in constant time)."""
    expected = get_components(request).settings.admin_token
    supplied = bearer(request.scope)
    return (expected is not None and supplied is not None
            and hmac.compare_digest(supplied.encode(), expected.get_secret_value().encode()))


def unauthorized() -> JSONResponse:
    return JSONResponse({"detail": "a valid token is required: FRONTDESK_ADMIN_TOKEN or a staff member's"},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})


def agent_may_use(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in AGENT_PATHS)


async def gate(scope: Scope) -> JSONResponse | None:
    """Before routing: 401 without a valid token, 403 for an agent outside `AGENT_PATHS`; None to go on.

    The actor is left in the request's state for the routes (`current_actor`) and for `audit`.
    """
    supplied = bearer(scope)
    if supplied is None:
        return unauthorized()
    request = Request(scope)
    if is_admin(request):
        actor = Actor("admin", Role.ADMIN, bootstrap=True)
    else:
        found = admin_services(scope["app"])
        if found is None:
            return unauthorized()  # no Redis yet: no staff token can be checked, only the admin token
        try:
            member = await run_in_threadpool(found.staff.authenticate, supplied)
        except redis.RedisError:
            return JSONResponse({"detail": "staff tokens cannot be checked: Redis is not answering"},
                                status_code=503, headers={"Retry-After": "2"})
        if member is None:
            return unauthorized()
        actor = Actor(member.name, member.role)
    if actor.role is not Role.ADMIN and not agent_may_use(scope["path"]):
        return JSONResponse({"detail": f"{scope['path']} is for admins; {actor.name} is signed in as an agent"},
                            status_code=403)
    scope.setdefault("state", {})["actor"] = actor
    return None


def current_actor(request: Request) -> Actor:
    """The dependency every admin route has: the actor `gate` found (401 if the gate was bypassed)."""
    actor = request.scope.get("state", {}).get("actor")
    if not isinstance(actor, Actor):
        raise HTTPException(401, "a valid token is required", headers={"WWW-Authenticate": "Bearer"})
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


def _template(route) -> str | None:
    path = getattr(route, "path", None)
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path) if path else None


def action_name(method: str, template: str) -> str:
    """"escalation.claim" for POST /admin/escalations/{id}/claim, "faq.reload", "model.deploy", ..."""
    if (method, template) in ACTIONS:
        return ACTIONS[(method, template)]
    if method == "GET" and template in AUDITED_READS:
        return AUDITED_READS[template]
    words = [w for w in template.removeprefix("/admin").split("/") if w and not w.startswith("{")]
    noun = words[0] if words else "admin"
    noun = noun[:-3] + "y" if noun.endswith("ies") else noun[:-1] if noun.endswith("s") and noun != "stats" else noun
    if len(words) > 1:
        return f"{noun}.{'.'.join(words[1:])}"
    return f"{noun}.{'delete' if method == 'DELETE' else 'update'}"


async def audit(scope: Scope, status: int) -> None:
    """After the response: one audit entry for a successful change (or audited read) under /admin."""
    actor = scope.get("state", {}).get("actor")
    template = _template(scope.get("route"))
    if not isinstance(actor, Actor) or template is None or status >= 400:
        return
    method = scope["method"]
    if method in ("GET", "HEAD", "OPTIONS") and (method != "GET" or template not in AUDITED_READS):
        return
    found = admin_services(scope["app"])
    if found is None:
        return
    action = action_name(method, template)

    def record() -> None:
        params = dict(scope.get("path_params") or {})
        if "user_id" in params:  # a customer: named by a pseudonym, never by their id (see bot.audit)
            params = {"customer": found.audit.pseudonym(str(params.pop("channel", "")), str(params.pop("user_id"))),
                      **params}
        target = ":".join(str(v) for v in params.values())
        if action in REPEATED_READS_S:
            found.audit.record_once(actor.name, action, target, per_s=REPEATED_READS_S[action])
        else:
            found.audit.record(actor.name, action, target)

    try:
        await run_in_threadpool(record)
    except redis.RedisError:  # the action itself happened: say so loudly, but the answer is already sent
        log.error("audit entry not recorded: Redis is not answering", extra={"action": action})


def require_actor(request: Request) -> None:
    current_actor(request)


def require_admin(request: Request) -> None:
    """For routers of their own under /admin (adapters/http/model_admin.py): an admin, whichever token."""
    if current_actor(request).role is not Role.ADMIN:
        raise HTTPException(403, "for admins only")
