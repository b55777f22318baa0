"""`POST /predict`: the model as a service, and the short path a valid request takes through the ASGI stack.

The route is an ordinary FastAPI route (documented in the OpenAPI schema, validated by FastAPI, its
errors answered by the app's handlers). But every request through FastAPI's stack (its telemetry,
exception and exit-stack middlewares, routing, dependency solving, body parsing, response rendering)
cost about as much CPU as the model's own pass for a one-sentence request on 2 cores (python -m bench.serve,
profile part; docs/BENCHMARKS.md). `PredictShortPath` sits inside the client-address limit and the
timing gate and answers a request that is plainly valid (a JSON body that `PredictRequest` accepts,
under the body cap, with the model loaded) itself, with the same results the route returns. Anything
else (no or another content type, JSON that does not validate, a body over the cap, no model yet) is
handed to FastAPI with the bytes already read replayed in front of the rest, so every refusal keeps
exactly one implementation: the route's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http.dependencies import ComponentsDep
from adapters.runtime import metrics

MAX_TEXTS = 256
MAX_CHARS = 20_000
Text = Annotated[str, Field(max_length=MAX_CHARS)]
PATH = "/predict"


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


async def predict_results(engine, body: PredictRequest) -> dict[str, list[dict]]:
    """What `/predict` answers, by either path: one result per text, counted by intent for Prometheus."""
    texts = [body.text] if body.text is not None else body.texts or []
    results = await engine.apredict(texts)
    for result in results:
        metrics.NLU_PREDICTIONS.labels(result.intent).inc()
    return {"results": [r.to_dict() for r in results]}


router = APIRouter()


@router.post(PATH, response_model=PredictResponse)
async def predict(body: PredictRequest, components: ComponentsDep) -> JSONResponse:
    # The documented route (no docstring: it would change the schema): a body that does not validate is 422,
    # then 503 (NotReady) while no model is loaded.
    # The results are built here, so they need no validation on the way out (response_model documents them).
    return JSONResponse(await predict_results(components.need("engine"), body))


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """The request says its body is JSON (`application/json` or `application/...+json`), as FastAPI requires."""
    for name, value in headers:
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))
    return False


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _replay(read: list[Message], receive: Receive) -> Receive:
    """`receive` with the messages already taken from it given back first, in order."""
    pending = list(read)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


class PredictShortPath:
    """Answers a valid `POST /predict` without FastAPI's per-request machinery (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, engine: Callable[[], Any | None], max_body: int, route: Any):
        self.app = app
        self.engine = engine  # the loaded engine, or None while there is none
        self.max_body = max_body
        self.route = route  # stored in the scope, as the router would, for the latency metric's label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        engine = self.engine()
        declared = _declared_length(scope["headers"])
        if engine is None or not _is_json(scope["headers"]) or (declared is not None and declared > self.max_body):
            await self.app(scope, receive, send)
            return
        read, body = await self._read(receive)
        request = self._parse(body) if body is not None else None
        if request is None:
            await self.app(scope, _replay(read, receive), send)
            return
        scope["route"] = self.route
        await _send_json(send, await predict_results(engine, request))

    async def _read(self, receive: Receive) -> tuple[list[Message], bytes | None]:
        """The messages read and the whole body, or None for the body when it passed the cap (or the client
        left): FastAPI then answers, 413 for a body too large."""
        read: list[Message] = []
        size = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                return read, None
            size += len(message.get("body", b""))
            if size > self.max_body:
                return read, None
            if not message.get("more_body", False):
                return read, b"".join(m.get("body", b"") for m in read)

    @staticmethod
    def _parse(body: bytes) -> PredictRequest | None:
        try:
            return PredictRequest.model_validate_json(body)
        except (ValidationError, ValueError):
            return None


async def _send_json(send: Callable[[Message], Awaitable[None]], payload: dict) -> None:
    # As Starlette's JSONResponse renders it, so both paths answer byte for byte alike.
    data = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
