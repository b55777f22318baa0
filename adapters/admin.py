"""`/admin/...` routes. Every one needs `Authorization: Bearer $FRONTDESK_ADMIN_TOKEN`."""

from __future__ import annotations

import hmac
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from adapters.components import Components


def is_admin(request: Request) -> bool:
    """True when the request carries the admin token (compared in constant time)."""
    components: Components = request.app.state.components
    expected = components.settings.admin_token
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    return (expected is not None and scheme.lower() == "bearer"
            and hmac.compare_digest(supplied.strip().encode(), expected.get_secret_value().encode()))


def unauthorized() -> JSONResponse:
    return JSONResponse({"detail": "admin token required"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def require_admin(request: Request) -> None:
    if not is_admin(request):
        raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"])


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
    agent: Annotated[str, Field(min_length=1, max_length=100)]


class AgentReplyBody(AgentBody):
    text: Annotated[str, Field(min_length=1, max_length=5000)]


ESCALATION_FIELDS = ("id", "conversation_id", "channel", "user_id", "reason", "status", "agent", "created_at",
                     "claimed_at", "resolved_at", "resolved_by")


def _public(record: dict) -> dict:
    return {k: record.get(k) for k in ESCALATION_FIELDS}


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
async def claim(escalation_id: str, body: AgentBody, request: Request) -> dict:
    """Claimed: 200, with `delivered: false` when the customer's platform refused the "has joined" notice."""
    bot = request.app.state.components.need("bot")
    return _delivered(await _staff_action(lambda: bot.claim(escalation_id, body.agent)))


@router.post("/escalations/{escalation_id}/reply", responses={502: {"description": "not delivered to the customer"}})
async def reply(escalation_id: str, body: AgentReplyBody, request: Request):
    """The staff message to the customer: 200 once their platform accepted it; 502 when it refused it after
    retries (the escalation is claimed and the message is in the transcript, marked `delivered: false`)."""
    bot = request.app.state.components.need("bot")
    record = await _staff_action(lambda: bot.agent_reply(escalation_id, body.agent, body.text))
    if record.get("delivered") is False:
        return JSONResponse(status_code=502, content={
            "detail": f"not delivered: {record.get('channel')} refused the message after retries; it is in the "
                      "transcript marked undelivered. Try again, or reach the customer another way.",
            **_delivered(record)})
    return _delivered(record)


@router.post("/escalations/{escalation_id}/resolve")
async def resolve(escalation_id: str, body: AgentBody, request: Request) -> dict:
    """Resolved: 200, with `delivered: false` when the customer's platform refused the hand-back notice."""
    bot = request.app.state.components.need("bot")
    return _delivered(await _staff_action(lambda: bot.resolve(escalation_id, body.agent)))


async def _staff_action(action):
    from bot.queue import EscalationError

    try:
        return await run_in_threadpool(action)
    except EscalationError as exc:
        status = 404 if str(exc).startswith("no escalation") else 409
        raise HTTPException(status, str(exc)) from None
