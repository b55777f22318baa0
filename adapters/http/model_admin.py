"""`/admin/model...`: deploy, restore and inspect the NLU model on every worker, live (docs/MODEL_LIFECYCLE.md).

The mechanism is `nlu.sync.ModelSync` (Redis-held desired version, pub/sub plus heartbeat),
which adapters/runtime/model_sync.py starts in every server process; this module puts HTTP in
front of it. A deploy loads and
probes the candidate in the requesting worker first: a directory that is not a model is
refused with 422 naming the problem, and nothing changes anywhere. A candidate worse than
the serving model on the review inbox's labelled items is refused with 409 unless forced
(`nlu.check`); the answer says why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from adapters.http.admin_gate import require_admin
from adapters.http.dependencies import ComponentsDep
from adapters.runtime.components import Components

log = logging.getLogger("frontdesk")

router = APIRouter(prefix="/admin/model", dependencies=[Depends(require_admin)], tags=["model"])


def _sync(components: Components):
    """This worker's `nlu.sync.ModelSync`: 503 while no model is loaded, or while Redis is not connected."""
    components.need("engine")
    if components.model_sync is None:
        raise HTTPException(503, "model versions need Redis, which is not connected yet")
    return components.model_sync


RECENT = 200  # review-inbox texts a check replays


def compare(components: Components, candidate) -> dict:
    """`nlu.check.compare` on this server's review inbox, with the bot's own decision rule."""
    from nlu.check import compare as run

    bot, engine = components.need("bot"), components.need("engine")
    labelled = [(item["text"], item["label_intent"]) for item in bot.review.labelled()]
    recent = [item["text"] for item in bot.review.list(limit=RECENT)]
    return run(engine.predict, candidate.predict, labelled, recent, bot.decision_for,
               serving_version=engine.version, candidate_version=candidate.version)


class DeployBody(BaseModel):
    path: Annotated[str, Field(min_length=1, max_length=4096, description="Model directory on the workers.")]
    force: bool = Field(default=False, description="Deploy even if the candidate is worse on labelled items.")


class CheckBody(BaseModel):
    candidate: Annotated[str, Field(min_length=1, max_length=4096, description="Model directory to compare.")]


def _load(sync, path: str):
    from nlu.artifacts import ModelLoadError

    try:
        return sync.load(str(Path(path).resolve()))
    except ModelLoadError as exc:
        raise HTTPException(422, f"path: {exc}; nothing changed") from None
    except (ValueError, OSError) as exc:  # a NUL byte, a name the OS refuses: not a directory of ours either
        raise HTTPException(422, f"path: not a usable directory name ({exc}); nothing changed") from None


@router.get("")
async def model_status(components: ComponentsDep) -> dict:
    """`{"version", "previous", "workers": [{"id", "version"}, ...]}` (plus paths, and each worker's last error)."""
    sync = _sync(components)
    try:
        return await run_in_threadpool(sync.status)
    except redis.RedisError:
        raise HTTPException(503, "model status unavailable: Redis is not answering") from None


@router.post("/deploy")
async def deploy(body: DeployBody, components: ComponentsDep) -> dict:
    """Validate (files, load, probe), compare on labelled review items, then switch every worker."""
    sync = _sync(components)  # after the body's checks
    candidate = await run_in_threadpool(_load, sync, body.path)
    comparison = None
    if components.bot is not None:
        comparison = await run_in_threadpool(compare, components, candidate)
        if comparison["worse"] and not body.force:
            lab = comparison["labelled"]
            raise HTTPException(409, {
                "reason": f"the candidate is worse on the {lab['n']} labelled review item(s): "
                          f"{lab['candidate_correct']} right against {lab['serving_correct']} for the serving "
                          "model; nothing changed. Send {\"force\": true} to deploy it anyway.",
                "check": comparison})
    try:
        current = await run_in_threadpool(sync.deploy, body.path, candidate)
    except redis.RedisError:
        raise HTTPException(503, "deploy not announced: Redis is not answering") from None
    log.info("model deployed", extra={"model_version": current["version"], "forced": body.force})
    return {"version": current["version"], "path": current["path"], "check": comparison}


@router.post("/restore")
async def restore(components: ComponentsDep) -> dict:
    """The previous version, on every worker."""
    from nlu.artifacts import ModelLoadError  # heavy (torch)

    sync = _sync(components)
    try:
        current = await run_in_threadpool(sync.restore)
    except LookupError as exc:
        raise HTTPException(409, str(exc)) from None
    except ModelLoadError as exc:
        raise HTTPException(409, f"the previous model no longer loads: {exc}; nothing changed") from None
    log.info("model restored", extra={"model_version": current["version"]})
    return {"version": current["version"], "path": current["path"]}


@router.post("/check")
async def check(body: CheckBody, components: ComponentsDep) -> dict:
    """Serving model against a candidate: accuracy on labelled review items, and decisions that would change."""
    components.need("bot")
    sync = _sync(components)
    candidate = await run_in_threadpool(_load, sync, body.candidate)
    return await run_in_threadpool(compare, components, candidate)
