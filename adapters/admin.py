"""`/admin/...` routes, and who may use them.

Every request under /admin carries `Authorization: Bearer TOKEN`: `FRONTDESK_ADMIN_TOKEN` (the
bootstrap admin, actor "admin") or a staff member's token (`bot.staff`, actor = the member's name).
`TimingAndAdminGate` (adapters/app.py) calls `gate` before routing, so an unknown or missing token
gets 401 whatever the path, and an agent gets 403 outside `AGENT_PATHS`: a rule on the path prefix,
so a route added later under /admin is admin-only unless it is added there. After the response it
calls `audit`, which records every successful change (any method but GET/HEAD/OPTIONS) and the reads
listed in `AUDITED_READS` in the audit log (`bot.audit`), with an action named after the route.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import Scope

from adapters.components import Components
from bot.audit import AuditLog
from bot.customers import CustomerData
from bot.keys import Keys
from bot.staff import Role, StaffDirectory

log = logging.getLogger("frontdesk")

# What an agent may use; every other /admin path answers 403 for them. Prefixes: "/admin/review" covers
# "/admin/review/export" and "/admin/review/{id}".
AGENT_PATHS = ("/admin/escalations", "/admin/review", "/admin/stats", "/admin/me",
               "/admin/saved-replies")  # the console's saved replies (adapters/desk_admin.py)
# Reads that are audited although they change nothing: they hand personal data out.
AUDITED_READS = {"/admin/customers/{channel}/{user_id}/export": "customer.export"}
# Actions named explicitly where the route's own words would not say what happened.
ACTIONS = {("DELETE", "/admin/customers/{channel}/{user_id}"): "customer.erase"}
MAX_TOKEN_CHARS = 256  # longer than any token we issue: refused without a lookup


@dataclass(frozen=True)
class Actor:
    """Who is acting: the bootstrap admin (FRONTDESK_ADMIN_TOKEN) or a staff member."""

    name: str
    role: Role
    bootstrap: bool = False


def _bearer(scope: Scope) -> str | None:
    scheme, _, supplied = Request(scope).headers.get("authorization", "").partition(" ")
    supplied = supplied.strip()
    if scheme.lower() != "bearer" or not supplied or len(supplied) > MAX_TOKEN_CHARS:
        return None
    return supplied


def is_admin(request: Request) -> bool:
    """True when the request carries the bootstrap admin token (compared in constant time)."""
    components: Components = request.app.state.components
    expected = components.settings.admin_token
    supplied = _bearer(request.scope)
    return (expected is not None and supplied is not None
            and hmac.compare_digest(supplied.encode(), expected.get_secret_value().encode()))


def unauthorized() -> JSONResponse:
    return JSONResponse({"detail": "a valid token is required: FRONTDESK_ADMIN_TOKEN or a staff member's"},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})


@dataclass
class _Services:
    """What the admin routes keep per Redis client: staff accounts, the audit log, customers' data."""

    client: object
    staff: StaffDirectory
    audit: AuditLog
    customers: CustomerData


def services(app) -> _Services | None:
    """The app's staff directory, audit log and customer data over its Redis; None while Redis is not loaded."""
    components: Components = app.state.components
    client = components.redis
    if client is None:
        return None
    cached = getattr(app.state, "admin_services", None)
    if cached is None or cached.client is not client:
        keys = Keys(components.settings.redis_prefix)
        cached = _Services(client, StaffDirectory(client, keys), AuditLog(client, keys), CustomerData(client, keys))
        app.state.admin_services = cached
    return cached


def agent_may_use(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in AGENT_PATHS)


async def gate(scope: Scope) -> JSONResponse | None:
    """Before routing: 401 without a valid token, 403 for an agent outside `AGENT_PATHS`; None to go on.

    The actor is left in the request's state for the routes (`current_actor`) and for `audit`.
    """
    supplied = _bearer(scope)
    if supplied is None:
        return unauthorized()
    request = Request(scope)
    if is_admin(request):
        actor = Actor("admin", Role.ADMIN, bootstrap=True)
    else:
        found = services(scope["app"])
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
    if template in AUDITED_READS:
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
    if method in ("GET", "HEAD", "OPTIONS") and template not in AUDITED_READS:
        return
    found = services(scope["app"])
    if found is None:
        return
    action = action_name(method, template)

    def record() -> None:
        params = dict(scope.get("path_params") or {})
        if "user_id" in params:  # a customer: named by a pseudonym, never by their id (see bot.audit)
            params = {"customer": found.audit.pseudonym(str(params.pop("channel", "")), str(params.pop("user_id"))),
                      **params}
        found.audit.record(actor.name, action, ":".join(str(v) for v in params.values()))

    try:
        await run_in_threadpool(record)
    except redis.RedisError:  # the action itself happened: say so loudly, but the answer is already sent
        log.error("audit entry not recorded: Redis is not answering", extra={"action": action})


def require_actor(request: Request) -> None:
    current_actor(request)


def require_admin(request: Request) -> None:
    """For routers of their own under /admin (adapters/model_admin.py): an admin, whichever token."""
    if current_actor(request).role is not Role.ADMIN:
        raise HTTPException(403, "for admins only")


router = APIRouter(prefix="/admin", dependencies=[Depends(require_actor)], tags=["admin"])


@router.get("/me")
async def me(actor: CurrentActor) -> dict:
    """Who the token belongs to (the console shows it)."""
    return {"name": actor.name, "role": str(actor.role)}


@router.get("/audit")
async def audit_log(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[dict]:  # the log is capped
    """Admins only (the gate). Newest first: `{"at", "actor", "action", "target"}`."""
    found = _need_services(request)
    try:
        return await run_in_threadpool(found.audit.entries, limit, offset)
    except redis.RedisError:
        raise HTTPException(503, "the audit log is unavailable: Redis is not answering") from None


CHANNEL = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="web, rest, slack, telegram, ...")]
USER_ID = Annotated[str, Path(min_length=1, max_length=200, description="The customer's id on that channel.")]


@router.get("/customers/{channel}/{user_id}/export")
async def export_customer(channel: CHANNEL, user_id: USER_ID, request: Request) -> dict:
    """Everything stored about the customer: conversations with transcripts, escalations, review items,
    rate-limit windows and where the statistics count them (docs/STAFF_AND_DATA.md)."""
    found = _need_services(request)
    try:
        return await run_in_threadpool(found.customers.export, channel, user_id)
    except redis.RedisError:
        raise HTTPException(503, "cannot export: Redis is not answering") from None


@router.delete("/customers/{channel}/{user_id}")
async def erase_customer(channel: CHANNEL, user_id: USER_ID, request: Request) -> dict:
    """Delete every key and scrub every value that names the customer; answers what was removed."""
    found = _need_services(request)
    try:
        return await run_in_threadpool(found.customers.erase, channel, user_id)
    except redis.RedisError:
        raise HTTPException(503, "cannot erase: Redis is not answering; nothing or part was removed, "
                                 "run it again") from None


def _need_services(request: Request) -> _Services:
    found = services(request.app)
    if found is None:
        raise HTTPException(503, "Redis is not connected yet")
    return found


@router.post("/faq/reload")
async def reload_faq(request: Request):
    """Rebuild from the configured source; 422 with every problem found, old version kept."""
    components: Components = request.app.state.components
    result = await run_in_threadpool(components.reload_kb)
    if not result.ok:
        return JSONResponse(status_code=422, content={"detail": "the knowledge base has errors; nothing changed",
                                                      **result.to_dict()})
    return result.to_dict()


@router.post("/faq/restore")
async def restore_faq(request: Request):
    """Serve the previous version again (on every worker)."""
    components: Components = request.app.state.components
    kb = components.need("kb")
    try:
        version = await run_in_threadpool(kb.restore_previous)
    except LookupError as exc:
        raise HTTPException(409, str(exc)) from None
    if components.sync is not None:
        await run_in_threadpool(components.sync.announce, "restore")
    return {"ok": True, "version": version}


@router.get("/faq")
async def faq_status(request: Request):
    components: Components = request.app.state.components
    kb = components.need("kb")
    status = kb.status()
    if components.bot is not None:  # the line chosen with the same calibration answers
        rules = components.bot.rules
        status["escalation"] = {"negative_threshold": rules.negative_threshold, "method": rules.method,
                                "calibrated_with": rules.calibrated_with or None}
    if components.sync is not None:
        status["worker"] = components.sync.worker_id
        status["workers"] = await run_in_threadpool(components.sync.workers)
    return status


@router.get("/stats")
async def stats(request: Request, days: Annotated[int, Query(ge=1, le=35)] = 1) -> dict:
    """Conversation numbers of the last `days` UTC days (see `bot.stats.BotStats.summary`)."""
    bot = request.app.state.components.need("bot")
    try:
        return await run_in_threadpool(bot.stats.summary, days)
    except redis.RedisError:
        raise HTTPException(503, "statistics unavailable: Redis is not answering") from None


class AgentBody(BaseModel):
    # With a staff token the account's name is the agent and this is ignored; the bootstrap admin token is
    # shared, so with it the body says who is acting (required).
    agent: Annotated[str | None, Field(min_length=1, max_length=100)] = None

    def agent_for(self, actor: Actor) -> str:
        if not actor.bootstrap:
            return actor.name
        if not self.agent:
            raise HTTPException(422, "body.agent: with FRONTDESK_ADMIN_TOKEN, give the staff member's name "
                                     "(a staff token needs none)")
        return self.agent


class AgentReplyBody(AgentBody):
    text: Annotated[str, Field(min_length=1, max_length=5000)]


ESCALATION_FIELDS = ("id", "conversation_id", "channel", "user_id", "reason", "status", "agent", "created_at",
                     "claimed_at", "resolved_at", "resolved_by")


def _public(record: dict) -> dict:
    # out_of_hours (bot.hours), the customer's display name where the channel gave one, the CSAT rating (bot.csat).
    rating = record.get("rating")
    return {**{k: record.get(k) for k in ESCALATION_FIELDS}, "out_of_hours": record.get("out_of_hours") == "1",
            "display_name": record.get("display_name"), "rating": int(rating) if rating else None}


@router.get("/escalations")
async def list_escalations(request: Request, status: str | None = None) -> list[dict]:
    """Newest first."""
    bot = request.app.state.components.need("bot")
    return [_public(r) for r in await run_in_threadpool(bot.queue.list, status)]


@router.get("/escalations/{escalation_id}")
async def get_escalation(escalation_id: str, request: Request) -> dict:
    bot = request.app.state.components.need("bot")

    def load() -> dict:
        return {**_public(bot.queue.get(escalation_id)), "transcript": bot.transcript(escalation_id)}

    return await _staff_action(load)


def _delivered(record: dict) -> dict:
    return {**_public(record), "delivered": record.get("delivered", True)}


@router.post("/escalations/{escalation_id}/claim")
async def claim(escalation_id: str, body: AgentBody, request: Request, actor: CurrentActor) -> dict:
    """Claimed: 200, with `delivered: false` when the customer's platform refused the "has joined" notice."""
    bot = request.app.state.components.need("bot")
    agent = body.agent_for(actor)
    return _delivered(await _staff_action(lambda: bot.claim(escalation_id, agent)))


@router.post("/escalations/{escalation_id}/reply", responses={502: {"description": "not delivered to the customer"}})
async def reply(escalation_id: str, body: AgentReplyBody, request: Request, actor: CurrentActor):
    """The staff message to the customer: 200 once their platform accepted it; 502 when it refused it after
    retries (the escalation is claimed and the message is in the transcript, marked `delivered: false`)."""
    bot = request.app.state.components.need("bot")
    agent = body.agent_for(actor)
    record = await _staff_action(lambda: bot.agent_reply(escalation_id, agent, body.text))
    if record.get("delivered") is False:
        return JSONResponse(status_code=502, content={
            "detail": f"not delivered: {record.get('channel')} refused the message after retries; it is in the "
                      "transcript marked undelivered. Try again, or reach the customer another way.",
            **_delivered(record)})
    return _delivered(record)


@router.post("/escalations/{escalation_id}/resolve")
async def resolve(escalation_id: str, body: AgentBody, request: Request, actor: CurrentActor) -> dict:
    """Resolved: 200, with `delivered: false` when the customer's platform refused the hand-back notice."""
    bot = request.app.state.components.need("bot")
    agent = body.agent_for(actor)
    return _delivered(await _staff_action(lambda: bot.resolve(escalation_id, agent)))


async def _staff_action(action):
    from bot.queue import EscalationError

    try:
        return await run_in_threadpool(action)
    except EscalationError as exc:
        status = 404 if str(exc).startswith("no escalation") else 409
        raise HTTPException(status, str(exc)) from None
