"""`/admin/...` routes. Every one needs `Authorization: Bearer $FRONTDESK_ADMIN_TOKEN`."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from adapters.components import Components


def require_admin(request: Request) -> None:
    """401 before anything else is looked up; the token is compared in constant time."""
    components: Components = request.app.state.components
    expected = components.settings.admin_token
    header = request.headers.get("authorization", "")
    scheme, _, supplied = header.partition(" ")
    if (expected is None or scheme.lower() != "bearer"
            or not hmac.compare_digest(supplied.strip().encode(), expected.get_secret_value().encode())):
        raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"])


def _kb(request: Request):
    kb = request.app.state.components.kb
    if kb is None:
        raise HTTPException(503, "the knowledge base is not loaded yet")
    return kb


@router.post("/faq/reload")
async def reload_faq(request: Request):
    """Rebuild from the configured source; 422 with every problem found, old version kept."""
    components: Components = request.app.state.components
    kb = _kb(request)
    result = await run_in_threadpool(kb.reload)
    if not result.ok:
        return JSONResponse(status_code=422, content={"detail": "the knowledge base has errors; nothing changed",
                                                      **result.to_dict()})
    if components.sync is not None:
        await run_in_threadpool(components.sync.announce, "reload")
    return result.to_dict()


@router.post("/faq/restore")
async def restore_faq(request: Request):
    """Serve the previous version again (on every worker)."""
    components: Components = request.app.state.components
    kb = _kb(request)
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
    kb = _kb(request)
    status = kb.status()
    if components.sync is not None:
        status["worker"] = components.sync.worker_id
        status["workers"] = await run_in_threadpool(components.sync.workers)
    return status
