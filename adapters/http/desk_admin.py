"""The staff console's own `/admin/...` routes: the team's saved replies, the daily numbers its charts draw,
and signing a staff token out (`POST /admin/staff/logout`, the console's "Sign out").

Saved replies are shared by the whole team, so they live in Redis (`{p:desk}:saved-replies`, a
hash of id -> JSON; see `bot.keys`), not in one browser: any worker serves them and every
console sees one list. They are short texts staff write themselves; customers' messages never
go in. Who may call these routes is the admin gate's decision (adapters/http/admin_gate.py: agents
included, the console is theirs); changes land in the audit log like every other /admin change.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from adapters.http.admin_gate import CurrentActor, require_actor, supplied_token
from adapters.http.dependencies import ComponentsDep, need_admin_services
from adapters.runtime.components import Components
from bot.keys import Keys

MAX_SAVED = 200  # a list staff pick from, not a knowledge base
router = APIRouter(prefix="/admin", dependencies=[Depends(require_actor)], tags=["console"])


class SavedReplyBody(BaseModel):
    title: Annotated[str, Field(min_length=1, max_length=80, description="What staff see in the list.")]
    text: Annotated[str, Field(min_length=1, max_length=5000, description="What goes into the reply box.")]


def _key(components: Components) -> tuple[redis.Redis, str]:
    """The Redis client and the saved replies' key; 503 while Redis is not connected (after the route's checks)."""
    return components.need("redis"), Keys(components.settings.redis_prefix).desk("saved-replies")


async def _redis(call):
    try:
        return await run_in_threadpool(call)
    except redis.RedisError:
        raise HTTPException(503, "saved replies unavailable: Redis is not answering") from None


@router.get("/saved-replies")
async def list_saved_replies(components: ComponentsDep) -> list[dict]:
    """Every saved reply, by title."""
    client, key = _key(components)
    raw = await _redis(lambda: client.hvals(key))
    return sorted((json.loads(v) for v in raw), key=lambda r: (r["title"].lower(), r["id"]))


@router.post("/saved-replies", status_code=201)
async def add_saved_reply(body: SavedReplyBody, components: ComponentsDep, actor: CurrentActor) -> dict:
    client, key = _key(components)
    reply = {"id": uuid.uuid4().hex[:10], "title": body.title.strip(), "text": body.text,
             "by": actor.name, "at": time.time()}

    def add() -> bool:
        if client.hlen(key) >= MAX_SAVED:
            return False
        client.hset(key, reply["id"], json.dumps(reply))
        return True

    if not await _redis(add):
        raise HTTPException(409, f"there are {MAX_SAVED} saved replies already; delete one first")
    return reply


@router.delete("/saved-replies/{reply_id}")
async def delete_saved_reply(components: ComponentsDep,
                             reply_id: Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$")]) -> dict:
    client, key = _key(components)
    if not await _redis(lambda: client.hdel(key, reply_id)):
        raise HTTPException(404, f"no saved reply {reply_id!r}")
    return {"deleted": reply_id}


@router.get("/stats/daily")
async def daily_stats(components: ComponentsDep, days: Annotated[int, Query(ge=1, le=35)] = 30) -> dict:
    """One entry per UTC day, oldest first (`bot.stats.BotStats.daily`): what the console's charts draw."""
    bot = components.need("bot")  # after the query's checks
    try:
        return {"days": await run_in_threadpool(bot.stats.daily, days)}
    except redis.RedisError:
        raise HTTPException(503, "statistics unavailable: Redis is not answering") from None


@router.post("/staff/logout")
async def sign_out(request: Request, actor: CurrentActor) -> dict:
    """Sign the request's own staff token out: from the next request on, on every worker, it gets 401.

    The console's "Sign out" calls it. The bootstrap admin token is configuration, not a session: 409,
    since only changing FRONTDESK_ADMIN_TOKEN revokes it.
    """
    if actor.bootstrap:
        raise HTTPException(409, "FRONTDESK_ADMIN_TOKEN cannot be signed out; change the variable to revoke it")
    found = need_admin_services(request)
    token = supplied_token(request) or ""
    try:
        await run_in_threadpool(found.staff.revoke, token)
    except redis.RedisError:
        raise HTTPException(503, "cannot sign out: Redis is not answering; the token still works") from None
    return {"signed_out": actor.name}
