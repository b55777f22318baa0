"""The FastAPI application: the outermost layer, wiring NLU, knowledge base, bot and channels to HTTP.

Each platform adapter is a module with a `router` (its HTTP routes, always mounted so a
misconfigured platform answers clearly instead of 404-ing by accident) and
`async start(components) -> adapter | None` (None when its settings are absent). A started
adapter is registered in `components.channels` and stopped with the app.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters import admin, console, errors, metrics, rest, slack, telegram, web
from adapters.components import Components, NotReady
from adapters.settings import Settings, load_settings
from bot.dispatch import HandlingTimeout

log = logging.getLogger("frontdesk")

MAX_TEXTS = 256
MAX_CHARS = 20_000
Text = Annotated[str, Field(max_length=MAX_CHARS)]


class PredictRequest(BaseModel):
    text: Text | None = None
    texts: Annotated[list[Text], Field(max_length=MAX_TEXTS)] | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> PredictRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError('give exactly one of "text" (a string) or "texts" (a list of strings)')
        return self


class PredictResponse(BaseModel):
    results: list[dict]


CHANNEL_MODULES: tuple = (web, console, slack, telegram)


class TimingAndAdminGate:
    """Request latency for Prometheus, and the admin gate: any /admin path, known or not, is refused
    without the token before routing looks it up.

    A plain ASGI middleware rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs
    every request through an extra task group and memory streams. Measured (bench/serve.py, profile part
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
        if (path == "/admin" or path.startswith("/admin/")) and not admin.is_admin(Request(scope)):
            response = admin.unauthorized()
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

    app = FastAPI(title="Frontdesk", version="0.1.0", lifespan=lifespan)
    app.state.components = components
    app.include_router(admin.router)
    app.include_router(rest.router)
    for module in CHANNEL_MODULES:
        app.include_router(module.router)

    app.add_middleware(TimingAndAdminGate)

    @app.exception_handler(HandlingTimeout)
    async def still_handling(request: Request, exc: HandlingTimeout) -> JSONResponse:
        # The message is queued and will be handled once; a retry with the same message_id gets its replies.
        return JSONResponse({"detail": "still working on this message; retry with the same message_id"},
                            status_code=503, headers={"Retry-After": "2"})

    # FastAPI's own 422 handler answers 500 for NaN, lone surrogates and deep inputs: see adapters/errors.py.
    app.add_exception_handler(RequestValidationError, errors.validation_error)

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, exc: NotReady) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> PredictResponse:
        engine = components.need("engine")
        texts = [body.text] if body.text is not None else body.texts or []
        results = await engine.apredict(texts)
        for r in results:
            metrics.NLU_PREDICTIONS.labels(r.intent).inc()
        return PredictResponse(results=[r.to_dict() for r in results])

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict:
        missing = components.missing()
        if missing:
            response.status_code = 503
        return {"ready": not missing, "missing": missing,
                "errors": {k: v for k, v in components.errors.items() if k in missing}}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
