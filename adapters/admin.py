"""`/admin/...` routes. Every one needs `Authorization: Bearer $FRONTDESK_ADMIN_TOKEN`."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

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
