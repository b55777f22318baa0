"""`/admin/model...`: deploy, restore and inspect the NLU model on every worker, live (CONTRACT.md "Model lifecycle").

The mechanism is `nlu.sync.ModelSync` (Redis-held desired version, pub/sub plus heartbeat);
this module wires it into a server process and puts HTTP in front of it. A deploy loads and
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
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client import Gauge
from pydantic import BaseModel, Field

from adapters import metrics
from adapters.admin import require_admin
from adapters.components import Components

log = logging.getLogger("frontdesk")

router = APIRouter(prefix="/admin/model", dependencies=[Depends(require_admin)], tags=["model"])
# frontdesk_model_info{version} 1: the model each worker serves (summed over workers under --workers N).
MODEL_VERSION = metrics._InfoGauge(Gauge("frontdesk_model_info", "NLU model version served (nlu.versions)",
                                         ["version"], multiprocess_mode="livemax"))


def loader(components: Components):
    """path -> a loaded, probed Predictor, with this process's device, backend and batch settings."""
    from nlu.versions import load_checked

    s = components.settings
    return lambda path: load_checked(path, s.device, max_batch=s.max_batch, backend=s.backend)


def start_model_sync(components: Components) -> None:
    """Join the fleet's model versions (called once the engine and Redis are up; a no-op otherwise)."""
    from bot.keys import Keys
    from nlu.sync import ModelSync

    if components.engine is None or components.redis is None or getattr(components, "model_sync", None):
        return
    sync = ModelSync(components.engine, components.redis, Keys(components.settings.redis_prefix).model,
                     loader(components), path=str(Path(components.settings.model_dir).resolve()))
    MODEL_VERSION.set(components.engine.version)
    sync.listeners.append(MODEL_VERSION.set)
    try:
        sync.catch_up()  # a deploy recorded in Redis: serve it before the FAQ calibrates with the model
    except redis.RedisError:
        log.warning("model versions: Redis unavailable at start; the sync thread will catch up")
    components.model_sync = sync
    # From here on (the FAQ calibrates after this, with whatever model catch_up left serving), each swap
    # recalibrates the FAQ's bars and the escalation line with the model now deciding beside them.
    sync.listeners.append(lambda version: components.recalibrate())
    sync.start()


def _sync(request: Request):
    components: Components = request.app.state.components
    components.need("engine")
    sync = getattr(components, "model_sync", None)
    if sync is None:
        raise HTTPException(503, "model versions need Redis, which is not connected yet")
    return sync


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
async def model_status(request: Request) -> dict:
    """`{"version", "previous", "workers": [{"id", "version"}, ...]}` (plus paths, and each worker's last error)."""
    sync = _sync(request)
    try:
        return await run_in_threadpool(sync.status)
    except redis.RedisError:
        raise HTTPException(503, "model status unavailable: Redis is not answering") from None


@router.post("/deploy")
async def deploy(body: DeployBody, request: Request) -> dict:
    """Validate (files, load, probe), compare on labelled review items, then switch every worker."""
    sync = _sync(request)
    candidate = await run_in_threadpool(_load, sync, body.path)
    comparison = None
    if request.app.state.components.bot is not None:
        comparison = await run_in_threadpool(compare, request.app.state.components, candidate)
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
async def restore(request: Request) -> dict:
    """The previous version, on every worker."""
    from nlu.artifacts import ModelLoadError

    sync = _sync(request)
    try:
        current = await run_in_threadpool(sync.restore)
    except LookupError as exc:
        raise HTTPException(409, str(exc)) from None
    except ModelLoadError as exc:
        raise HTTPException(409, f"the previous model no longer loads: {exc}; nothing changed") from None
    log.info("model restored", extra={"model_version": current["version"]})
    return {"version": current["version"], "path": current["path"]}


@router.post("/check")
async def check(body: CheckBody, request: Request) -> dict:
    """Serving model against a candidate: accuracy on labelled review items, and decisions that would change."""
    components: Components = request.app.state.components
    components.need("bot")
    sync = _sync(request)
    candidate = await run_in_threadpool(_load, sync, body.candidate)
    return await run_in_threadpool(compare, components, candidate)
