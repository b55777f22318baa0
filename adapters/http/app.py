"""The FastAPI application: the outermost layer, wiring NLU, knowledge base, bot and channels to HTTP.

The app mounts every channel's `router` and, at start-up, runs every channel's `start(components)`
(adapters/channels: the contract); a started adapter is registered in `components.channels` and
stopped with the app. Then the /admin routers, behind the admin gate, and the staff desk's pages.
The components are kept in the app's state, where adapters/http/dependencies.py hands them to routes.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.channels import rest, slack, telegram, web
from adapters.http import (
    admin,
    admin_gate,
    desk_admin,
    desk_page,
    kb_admin,
    model_admin,
    predict_api,
    review_admin,
    topics_admin,
)
from adapters.http.address_limit import ClientAddressLimit
from adapters.http.api_gate import ApiGate
from adapters.http.predict_api import PredictShortPath
from adapters.http.staff_pages import pages as staff_pages
from adapters.http.validation_errors import validation_error
from adapters.runtime import metrics
from adapters.runtime.components import Components, NotReady
from adapters.runtime.settings import Settings, load_settings
from bot.dispatch_records import HandlingTimeout
from bot.errors import REDIS_ERRORS

log = logging.getLogger("frontdesk")

# Every channel the server runs: each has a `router` and `async start(components) -> adapter | None`.
CHANNEL_MODULES: tuple = (rest, web, slack, telegram)


class TimingAndAdminGate:
    """Request latency for Prometheus, and the admin gate: any /admin path, known or not, is refused
    without the token before routing looks it up.

    A plain ASGI middleware rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs
    every request through an extra task group and memory streams. Measured (bench/serve, profile part
    and an A/B on `GET /healthz` at 64 clients) it cost about 0.7 ms of CPU per request, four times the
    rest of the HTTP path, on 2 cores where `/predict` needs that CPU for the model.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan and websockets pass through untouched
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        is_admin_path = path == "/admin" or path.startswith("/admin/")
        # 401 without a valid token (admin or staff), 403 for an agent outside their paths (admin_gate.py).
        refusal = await admin_gate.gate(scope) if is_admin_path else None
        if refusal is not None:
            response = refusal
            await response(scope, receive, send)
            status = response.status_code
        else:
            status = 500

            async def send_and_note_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await self.app(scope, receive, send_and_note_status)
            if is_admin_path:
                await admin_gate.audit(scope, status)  # successful changes, and exports, go to the audit log
        # The router stores the matched route in the (shared) scope; the path template keeps labels bounded.
        metrics.REQUEST_LATENCY.labels(getattr(scope.get("route"), "path", "unmatched"), scope["method"],
                                       str(status)).observe(time.perf_counter() - started)


def create_app(settings: Settings | None = None, components: Components | None = None) -> FastAPI:
    settings = settings or load_settings()
    components = components or Components(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        components.start()
        started = []
        try:
            for module in CHANNEL_MODULES:
                adapter = await module.start(components)
                if adapter is not None:
                    components.channels.add(adapter)
                    started.append(adapter)
            yield
        finally:
            for adapter in reversed(started):
                try:
                    await adapter.stop()
                except Exception:
                    log.exception("stopping %s failed", type(adapter).__name__)
            components.close()

    # max_body_size: Starlette's body limit, outermost: 413 on a Content-Length over the cap before any route
    # reads a byte, and 413 as soon as a chunked body passes it while streaming in (docs/SECURITY.md).
    app = FastAPI(title="Frontdesk", version="0.1.0", lifespan=lifespan, max_body_size=settings.max_body_bytes)
    app.state.components = components  # read through adapters/http/dependencies.py
    _add_routes(app, components)
    app.add_middleware(PredictShortPath, engine=lambda: components.engine, max_body=settings.max_body_bytes,
                       route=predict_api.router.routes[0], queue=settings.predict_queue)  # innermost of ours
    app.add_middleware(ApiGate)  # /chat's and /predict's tokens, /predict's own address limit: before any body
    app.add_middleware(TimingAndAdminGate)
    app.add_middleware(ClientAddressLimit)  # added last: runs first, before the admin gate (token guessing counts)
    _add_error_handlers(app)
    return app


def _add_routes(app: FastAPI, components: Components) -> None:
    """Routes are matched in order: /predict and the probes, then the customers' channels, then the many /admin
    routes, then the staff desk's pages."""
    app.include_router(predict_api.router)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict:
        # The readiness monitor's last check (adapters/runtime/readiness.py): read, never waited for. Checking here
        # pinged Redis on the event loop, and with Redis stalled five probes made /healthz time out.
        readiness = components.readiness.current()
        if not readiness.ready:
            response.status_code = 503
        return readiness.body()

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        # No readiness check here: a Redis that does not answer would hold the scrape (and this event loop) for
        # seconds. Every worker's readiness monitor keeps frontdesk_ready about a second old.
        body, content_type = metrics.render()  # under --workers N: the sum over every worker
        return Response(body, media_type=content_type)

    for module in CHANNEL_MODULES:
        app.include_router(module.router)
    app.include_router(admin.router)
    app.include_router(kb_admin.router)  # the knowledge base: reload (gated), check, restore (admins)
    app.include_router(topics_admin.router)  # topics of unanswered messages, drafts (agents too)
    app.include_router(topics_admin.entries)  # approved entries into learned.yaml (admins)
    app.include_router(desk_admin.router)  # the console's saved replies and daily numbers
    app.include_router(model_admin.router)  # model deploy, restore, check (admins)
    app.include_router(review_admin.router)  # the review inbox (agents too)
    app.include_router(review_admin.proposals_router)  # agents' FAQ labels waiting for an admin
    app.include_router(staff_pages)  # /console/review, /model, /gaps: their pages (before the console's /{name})
    app.include_router(desk_page.router)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HandlingTimeout)
    async def still_handling(request: Request, exc: HandlingTimeout) -> JSONResponse:
        # The message is queued and will be handled once; a retry with the same message_id gets its replies.
        return JSONResponse({"detail": "still working on this message; retry with the same message_id"},
                            status_code=503, headers={"Retry-After": "2"})

    # FastAPI's own 422 handler answers 500 for NaN, lone surrogates and deep inputs: see validation_errors.py.
    app.add_exception_handler(RequestValidationError, validation_error)

    async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # One Redis restarting, a Sentinel fail-over or a cluster moving slots: try again shortly, never a 500.
        log.warning("Redis unavailable for %s (%s)", request.url.path, type(exc).__name__)
        return JSONResponse({"detail": "Redis is unavailable; try again shortly"}, status_code=503,
                            headers={"Retry-After": "2"})

    for redis_error in REDIS_ERRORS:
        app.add_exception_handler(redis_error, redis_unavailable)

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, exc: NotReady) -> JSONResponse:
        """A part the route needs is still loading (`components.need`, the dependencies): 503."""
        return JSONResponse({"detail": str(exc)}, status_code=503)
