"""`/admin/model...`: deploy, restore and inspect the NLU model on every worker, live (docs/MODEL_LIFECYCLE.md).

The mechanism is `nlu.sync.ModelSync` (Redis-held desired version, pub/sub plus heartbeat),
which adapters/runtime/model_sync.py starts in every server process; this module puts HTTP in
front of it. A deploy loads and probes the candidate in the requesting worker first: a
directory that is not a model, or one with a file that does not load (a corrupt ONNX graph,
weights or tokenizer), is refused with 422 naming the file, and nothing changes anywhere; with
FRONTDESK_MODELS_ROOT set, a directory outside it is refused with 403 before anything is read.
A candidate worse than the serving model on the review inbox's labelled items is refused with
409 unless forced (`nlu.check`); the answer says why. Checks, deploys and restores run one at a
time per worker, and deploys and restores one at a time across the fleet (a lock in Redis).

With `replay` a check also runs the last days of real traffic through both models, and a deploy with
a `gate` refuses (409, audited) past it (adapters/http/replay_gate.py). `/admin/model/shadow` runs a
candidate beside the serving model on every worker without answering (adapters/runtime/shadow.py); a
deploy without a path promotes it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from adapters.http.admin_gate import Actor, CurrentActor, require_admin
from adapters.http.dependencies import AdminServices, AdminServicesDep, ComponentsDep
from adapters.http.replay_gate import GateBody, days_of, enforce, model_replay, verdict
from adapters.runtime.components import Components
from adapters.runtime.model_sync import ModelPathRefused, refuse_outside_root
from adapters.runtime.shadow import ShadowRefused
from bot.errors import REDIS_ERRORS

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
    return run(engine.predict, candidate.predict, labelled, recent, bot.decisions_for,
               serving_version=engine.version, candidate_version=candidate.version)


class DeployBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # every field is optional: a misspelt one must not mean "promote"

    path: Annotated[str | None, Field(min_length=1, max_length=4096, description=(
        "Model directory on the workers; absent: the running shadow model, promoted."))] = None
    force: bool = Field(default=False, description="Deploy even if worse on labelled items, or refused by the gate.")
    gate: GateBody | None = Field(default=None, description="Replay recent traffic first; refuse past the gate.")


class CheckBody(BaseModel):
    candidate: Annotated[str, Field(min_length=1, max_length=4096, description="Model directory to compare.")]
    replay: bool = Field(default=False, description="Also replay the last days of real traffic through both.")
    days: Annotated[int | None, Field(ge=1, le=35, description="Days replayed; default FRONTDESK_REPLAY_DAYS.")
                    ] = None


# One check, deploy or restore at a time in this worker: each loads a whole model beside the serving one. Across
# workers, `ModelSync.exclusive` (a lock in Redis) orders deploys and restores, held from the candidate's load to
# the announcement, so a deploy is compared with the model it replaces and recorded after the one before it.
# Both are waited for on the request's pool thread, never on the event loop.
_one_at_a_time = threading.Lock()


def _load(components: Components, sync, path: str):
    """The candidate at `path`, loaded and probed: 403 outside FRONTDESK_MODELS_ROOT, 422 naming the file that
    does not load (corrupt ONNX graph, weights, tokenizer...), and nothing changed either way."""
    from nlu.artifacts import ModelLoadError

    try:
        resolved = str(Path(path).resolve())
        refuse_outside_root(components.settings, resolved)
        return sync.load(resolved)
    except ModelPathRefused as exc:
        raise HTTPException(403, f"path: {exc}; nothing changed") from None
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
async def deploy(body: DeployBody, components: ComponentsDep, actor: CurrentActor, services: AdminServicesDep
                 ) -> dict:
    """Validate (files, load, probe), compare on labelled review items, pass the gate if asked, then switch every
    worker."""
    sync = _sync(components)  # after the body's checks
    current, comparison, replayed = await run_in_threadpool(_deploy, components, sync, body, actor, services)
    log.info("model deployed", extra={"model_version": current["version"], "forced": body.force})
    return {"version": current["version"], "path": current["path"], "check": comparison, "replay": replayed}


def _deploy(components: Components, sync, body: DeployBody, actor: Actor, services: AdminServices
            ) -> tuple[dict, dict | None, dict | None]:
    with _one_at_a_time, _fleet_lock(sync):
        sync.catch_up()  # a deploy another worker just finished serves here too: the one this deploy replaces
        shadow = _shadow_record(components)
        if body.path is None and shadow is None:
            raise HTTPException(409, "no path given and no shadow model running to promote; nothing changed")
        path = body.path or shadow["path"]
        candidate = _load(components, sync, path)
        comparison = replayed = None
        if components.bot is not None:
            comparison = compare(components, candidate)
            if comparison["worse"] and not body.force:
                lab = comparison["labelled"]
                raise HTTPException(409, {
                    "reason": f"the candidate is worse on the {lab['n']} labelled review item(s): "
                              f"{lab['candidate_correct']} right against {lab['serving_correct']} for the serving "
                              "model; nothing changed. Send {\"force\": true} to deploy it anyway.",
                    "check": comparison})
        forced = None
        if body.gate is not None:
            report = model_replay(components, candidate, days_of(components, body.gate))
            replayed = report.to_dict()
            forced = enforce(services, actor, "model.deploy", candidate.version,
                             verdict(components, body.gate, report), report, force=body.force)
        try:
            current = sync.deploy(path, candidate)
        except REDIS_ERRORS:
            raise HTTPException(503, "deploy not announced: Redis is not answering") from None
        if forced is not None:
            forced()
        if shadow is not None and shadow["path"] == current["path"]:  # promoted: it serves now, no more shadow
            with contextlib.suppress(ShadowRefused, *REDIS_ERRORS):
                components.shadow_sync.end()
        return current, comparison, replayed


@contextmanager
def _fleet_lock(sync) -> Iterator[None]:
    """`ModelSync.exclusive`: 409 when another worker's deploy or restore outlasts the wait, 503 without Redis."""
    from nlu.sync import DeployBusy

    try:
        with sync.exclusive():
            yield
    except DeployBusy as exc:
        raise HTTPException(409, str(exc)) from None
    except REDIS_ERRORS:
        raise HTTPException(503, "nothing changed: Redis is not answering") from None


@router.post("/restore")
async def restore(components: ComponentsDep) -> dict:
    """The previous version, on every worker."""
    sync = _sync(components)
    current = await run_in_threadpool(_restore, sync)
    log.info("model restored", extra={"model_version": current["version"]})
    return {"version": current["version"], "path": current["path"]}


def _restore(sync) -> dict:
    from nlu.artifacts import ModelLoadError  # heavy (torch)

    with _one_at_a_time, _fleet_lock(sync):
        try:
            return sync.restore()
        except LookupError as exc:
            raise HTTPException(409, str(exc)) from None
        except ModelLoadError as exc:
            raise HTTPException(409, f"the previous model no longer loads: {exc}; nothing changed") from None


@router.post("/check")
async def check(body: CheckBody, components: ComponentsDep) -> dict:
    """Serving model against a candidate: accuracy on labelled review items, decisions that would change on the
    review inbox's recent messages, and with `replay` on the last days of real traffic."""
    components.need("bot")
    sync = _sync(components)
    return await run_in_threadpool(_check, components, sync, body)


def _check(components: Components, sync, body: CheckBody) -> dict:
    with _one_at_a_time:
        candidate = _load(components, sync, body.candidate)
        found = compare(components, candidate)
        if body.replay:
            found["replay"] = model_replay(components, candidate, days_of(components, None, body.days)).to_dict()
        return found


class ShadowBody(BaseModel):
    path: Annotated[str, Field(min_length=1, max_length=4096, description="Candidate model directory on the workers.")]


def _shadows(components: Components):
    """This worker's `ShadowSync`: 503 while the bot (which the shadow decides with) is not running yet."""
    _sync(components)
    if components.shadow_sync is None:
        raise HTTPException(503, "shadow models need the bot, which is not loaded yet")
    return components.shadow_sync


def _shadow_record(components: Components) -> dict | None:
    return components.shadow_sync.desired() if components.shadow_sync is not None else None


@router.post("/shadow")
async def start_shadow(body: ShadowBody, components: ComponentsDep) -> dict:
    """Load a candidate on every worker beside the serving model: it classifies live messages off the reply path,
    within FRONTDESK_SHADOW_BUDGET, and never answers. Replaces a shadow already running."""
    shadows = _shadows(components)
    return await run_in_threadpool(_start_shadow, components, shadows, body.path)


def _start_shadow(components: Components, shadows, path: str) -> dict:
    sync = _sync(components)
    with _one_at_a_time:
        candidate = _load(components, sync, path)
        try:
            return shadows.begin(str(Path(path).resolve()), candidate)
        except REDIS_ERRORS:
            raise HTTPException(503, "shadow not started everywhere: Redis is not answering") from None


@router.get("/shadow")
async def shadow_status(components: ComponentsDep) -> dict:
    """`{"active", "path", "version", "since", "compared", "agreement", "decisions_changed", "changes",
    "skipped", "failed", "latency_ms": {worker: {"serving", "candidate"}}, "workers"}`, every worker added up."""
    shadows = _shadows(components)
    try:
        return await run_in_threadpool(shadows.status)
    except REDIS_ERRORS:
        raise HTTPException(503, "shadow status unavailable: Redis is not answering") from None


@router.delete("/shadow")
async def stop_shadow(components: ComponentsDep) -> dict:
    """Stop the shadow on every worker; answers what it had found."""
    shadows = _shadows(components)
    try:
        return await run_in_threadpool(shadows.end)
    except ShadowRefused as exc:
        raise HTTPException(404, str(exc)) from None
    except REDIS_ERRORS:
        raise HTTPException(503, "shadow not stopped: Redis is not answering") from None
