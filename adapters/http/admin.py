"""`/admin/...` routes: escalations, statistics, customers' data and the audit log (the knowledge base: kb_admin).

Who may call them is decided before routing (adapters/http/admin_gate.py): agents may use the
escalations, statistics and `/admin/me`; everything else here is for admins.
"""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from adapters.http.admin_gate import Actor, CurrentActor, require_actor
from adapters.http.dependencies import BotDep, ComponentsDep, need_admin_services
from bot.escalations import EscalationError, EscalationNotFound, EscalationStatus, StaffResult

router = APIRouter(prefix="/admin", dependencies=[Depends(require_actor)], tags=["admin"])


@router.get("/me")
async def me(actor: CurrentActor) -> dict:
    """Who the token belongs to (the console shows it)."""
    return {"name": actor.name, "role": str(actor.role)}


@router.get("/audit")
async def audit_log(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[dict]:  # the log is capped
    """Admins only (the gate). Newest first: `{"at", "actor", "action", "target"}`."""
    found = need_admin_services(request)  # after the query's checks: a bad limit is 422 even without Redis
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
    found = need_admin_services(request)
    try:
        return await run_in_threadpool(found.customers.export, channel, user_id)
    except redis.RedisError:
        raise HTTPException(503, "cannot export: Redis is not answering") from None


@router.delete("/customers/{channel}/{user_id}")
async def erase_customer(channel: CHANNEL, user_id: USER_ID, request: Request, components: ComponentsDep) -> dict:
    """Delete every key and scrub every value that names the customer, delete the bot's Slack posts holding
    their words and have Redis rewrite its files; answers what was removed and what was not (docs/STAFF_AND_DATA.md).
    When FAQ alternates (labelled, or approved from topics) held their words, the knowledge base is reloaded (on
    every worker) without them, and no worker keeps a version to restore (it holds their words)."""
    found = need_admin_services(request)
    try:
        erased = await run_in_threadpool(found.customers.erase, channel, user_id)
    except redis.RedisError:
        raise HTTPException(503, "cannot erase: Redis is not answering; nothing or part was removed, "
                                 "run it again") from None
    erased["knowledge_base_reloaded"] = False
    if (erased["faq_alternates"] or erased["learned_alternates"]) and components.kb is not None:
        reloaded = await run_in_threadpool(lambda: components.reload_kb(erasure=True))
        erased["knowledge_base_reloaded"] = reloaded.ok
    return erased


@router.get("/stats")
async def stats(components: ComponentsDep, days: Annotated[int, Query(ge=1, le=35)] = 1) -> dict:
    """Conversation numbers of the last `days` UTC days (see `bot.stats.BotStats.summary`)."""
    bot = components.need("bot")  # after the query's checks: a bad `days` is 422 even while the bot loads
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


@router.get("/escalations")
async def list_escalations(
        bot: BotDep,
        status: Annotated[list[EscalationStatus] | None, Query(
            description="Only these statuses (repeat it: ?status=open&status=claimed); all when absent.")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict]:
    """Newest first, at most `limit`. Read from each status's index, one page, never every escalation ever
    made (bot.escalations): the console polls this every few seconds."""
    return [e.to_public() for e in await run_in_threadpool(bot.queue.list, status, limit)]


@router.get("/escalations/{escalation_id}")
async def get_escalation(escalation_id: str, bot: BotDep) -> dict:
    def load() -> dict:
        return {**bot.queue.get(escalation_id).to_public(), "transcript": bot.transcript(escalation_id)}

    return await _staff_action(load)


def _delivered(result: StaffResult) -> dict:
    return {**result.escalation.to_public(), "delivered": result.delivered}


@router.post("/escalations/{escalation_id}/claim")
async def claim(escalation_id: str, body: AgentBody, components: ComponentsDep, actor: CurrentActor) -> dict:
    """Claimed: 200, with `delivered: false` when the customer's platform refused the "has joined" notice."""
    bot = components.need("bot")  # after the body's checks (see adapters/http/dependencies.py)
    agent = body.agent_for(actor)
    return _delivered(await _staff_action(lambda: bot.claim(escalation_id, agent)))


@router.post("/escalations/{escalation_id}/reply", responses={502: {"description": "not delivered to the customer"}})
async def reply(escalation_id: str, body: AgentReplyBody, components: ComponentsDep, actor: CurrentActor):
    """The staff message to the customer: 200 once their platform accepted it; 502 when it refused it after
    retries (the escalation is claimed and the message is in the transcript, marked `delivered: false`)."""
    bot = components.need("bot")
    agent = body.agent_for(actor)
    result = await _staff_action(lambda: bot.agent_reply(escalation_id, agent, body.text))
    if not result.delivered:
        return JSONResponse(status_code=502, content={
            "detail": f"not delivered: {result.escalation.channel} refused the message after retries; it is in "
                      "the transcript marked undelivered. Try again, or reach the customer another way.",
            **_delivered(result)})
    return _delivered(result)


@router.post("/escalations/{escalation_id}/resolve")
async def resolve(escalation_id: str, body: AgentBody, components: ComponentsDep, actor: CurrentActor) -> dict:
    """Resolved: 200, with `delivered: false` when the customer's platform refused the hand-back notice."""
    bot = components.need("bot")
    agent = body.agent_for(actor)
    return _delivered(await _staff_action(lambda: bot.resolve(escalation_id, agent)))


async def _staff_action(action):
    try:
        return await run_in_threadpool(action)
    except EscalationNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except EscalationError as exc:
        raise HTTPException(409, str(exc)) from None
