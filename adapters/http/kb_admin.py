"""`/admin/faq...`: reload, check, restore and inspect the knowledge base, on every worker (docs/KNOWLEDGE_BASE.md).

A reload builds the configured source beside the serving index and swaps it in only when it is
valid (`knowledge.service`); with a `gate` it first builds the same source as a preview, replays
recent real traffic through both (adapters/http/replay_gate.py) and refuses (409, audited) when
too many decisions would change or the conversation tests the command line ran failed, unless
forced. A check builds any source (`candidate`) the same way and reports, changing nothing.
Admins only (the gate in adapters/http/admin_gate.py: /admin/faq is not an agent path).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from adapters.http.admin_gate import Actor, CurrentActor, require_actor
from adapters.http.dependencies import AdminServices, ComponentsDep, KbDep, need_admin_services
from adapters.http.replay_gate import GateBody, days_of, enforce, kb_replay, verdict
from adapters.runtime.components import Components
from knowledge.sources import KnowledgeBaseError

router = APIRouter(prefix="/admin/faq", dependencies=[Depends(require_actor)], tags=["knowledge base"])

REJECTED = "the knowledge base has errors; nothing changed"


class ReloadBody(BaseModel):
    gate: GateBody | None = Field(default=None, description="Replay recent traffic first; refuse past the gate.")
    force: bool = Field(default=False, description="Reload even when the gate refuses.")


class CheckBody(BaseModel):
    candidate: Annotated[str | None, Field(min_length=1, max_length=4096, description=(
        "A knowledge-base file or folder on the server; default: the configured source."))] = None
    replay: bool = Field(default=False, description="Replay the last days of real traffic through both.")
    days: Annotated[int | None, Field(ge=1, le=35, description="Days replayed; default FRONTDESK_REPLAY_DAYS.")
                    ] = None


@router.post("/reload")
async def reload_faq(components: ComponentsDep, actor: CurrentActor, request: Request, body: ReloadBody | None = None):
    """Rebuild from the configured source; 422 with every problem found, old version kept; 409 past a gate."""
    if body is not None and body.gate is not None:
        services = need_admin_services(request)  # a gate's verdict is audited: Redis is needed for it only
        return await run_in_threadpool(_gated_reload, components, body, actor, services)
    result = await run_in_threadpool(components.reload_kb)
    if not result.ok:
        return JSONResponse(status_code=422, content={"detail": REJECTED, **result.to_dict()})
    return result.to_dict()


def _gated_reload(components: Components, body: ReloadBody, actor: Actor, services: AdminServices):
    """The configured source built as a preview, through the gate (409 from `enforce`), then that very build
    served: a file edited meanwhile waits for the next reload instead of going live unjudged."""
    kb = components.need("kb")
    try:
        preview = kb.preview()
    except KnowledgeBaseError as exc:
        return JSONResponse(status_code=422, content={"detail": REJECTED, "ok": False,
                                                      "version": kb.status()["version"],
                                                      "errors": [e.to_dict() for e in exc.problems]})
    report = kb_replay(components, preview, days_of(components, body.gate))
    forced = enforce(services, actor, "faq.reload", preview.version["version"],
                     verdict(components, body.gate, report), report, force=body.force)
    result = components.reload_kb(preview)
    forced()
    return {**result.to_dict(), "replay": report.to_dict()}


@router.post("/check")
async def check_faq(body: CheckBody, components: ComponentsDep) -> dict:
    """A candidate knowledge base against the serving one, changing nothing: its contents and calibration, and
    with `replay` the decisions that would change on the last days of real traffic; 422 naming every problem."""
    components.need("kb")
    return await run_in_threadpool(_check, components, body)


def _check(components: Components, body: CheckBody) -> dict:
    kb = components.need("kb")
    try:
        preview = kb.preview(body.candidate)
    except KnowledgeBaseError as exc:
        raise HTTPException(422, {"reason": f"{body.candidate or kb.source}: {REJECTED}",
                                  "errors": [e.to_dict() for e in exc.problems]}) from None
    except (OSError, ValueError) as exc:  # a name the OS refuses (too long, a NUL byte): not a knowledge base
        raise HTTPException(422, {"reason": f"candidate: not a usable file or folder name ({type(exc).__name__}); "
                                            "nothing changed", "errors": []}) from None
    serving = kb.index
    found = {"serving": serving.version.to_dict(), "candidate": preview.version,
             "contents": {"serving": serving.summary, "candidate": preview.index.summary},
             "calibration": {"serving": serving.thresholds.measured, "candidate": preview.index.thresholds.measured},
             "replay": None}
    if body.replay:
        found["replay"] = kb_replay(components, preview, days_of(components, None, body.days)).to_dict()
    return found


@router.post("/restore")
async def restore_faq(kb: KbDep, components: ComponentsDep):
    """Serve the previous version again (on every worker)."""
    try:
        version = await run_in_threadpool(kb.restore_previous)
    except LookupError as exc:
        raise HTTPException(409, str(exc)) from None
    if components.sync is not None:
        await run_in_threadpool(components.sync.announce, "restore")
    return {"ok": True, "version": version}


@router.get("")
async def faq_status(kb: KbDep, components: ComponentsDep):
    status = kb.status()
    if components.bot is not None:  # the line chosen with the same calibration answers
        rules = components.bot.rules
        status["escalation"] = {"negative_threshold": rules.negative_threshold, "method": rules.method,
                                "calibrated_with": rules.calibrated_with or None}
    if components.sync is not None:
        status["worker"] = components.sync.worker_id
        status["workers"] = await run_in_threadpool(components.sync.workers)
    return status
