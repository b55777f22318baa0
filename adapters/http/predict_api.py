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

Who may call it, and how often per address, is settled before either path (`adapters.http.api_gate`).
What the model owes is bounded here (`PredictQueue`): at most FRONTDESK_PREDICT_QUEUE texts admitted by this
worker and not yet answered; a request that would pass that is answered 503 with `Retry-After` at once,
and none of its texts reach the model. The chat shares the model, so a flood of /predict texts would
otherwise queue in front of every customer's message.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http.dependencies import ComponentsDep
from adapters.runtime import metrics

MAX_TEXTS = 256
MAX_CHARS = 20_000
Text = Annotated[str, Field(max_length=MAX_CHARS)]
PATH = "/predict"
QUEUE_STATE = "predict_queue"
RETRY_AFTER_S = 1  # a batch takes milliseconds to tens of milliseconds: room comes back quickly


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


class PredictQueueFull(HTTPException):
    """More /predict texts waiting for the model in this worker than FRONTDESK_PREDICT_QUEUE allows: 503."""

    def __init__(self, limit: int, waiting: int, count: int):
        super().__init__(503, f"the model has {waiting} /predict texts waiting and takes at most {limit} "
                              f"(FRONTDESK_PREDICT_QUEUE); none of this request's {count} was queued; retry shortly",
                         headers={"Retry-After": str(RETRY_AFTER_S)})


class PredictQueue:
    """The texts this worker has handed the model for /predict and not answered yet, at most `limit`.

    Both paths run on the worker's event loop, so admitting is check-and-add with no await between."""

    def __init__(self, limit: int):
        self.limit = limit
        self.waiting = 0

    @contextmanager
    def admit(self, count: int) -> Iterator[None]:
        """Hold room for `count` texts while the block runs (answered, failed or cancelled: freed); raises
        `PredictQueueFull` instead when there is none."""
        if self.waiting + count > self.limit:
            raise PredictQueueFull(self.limit, self.waiting, count)
        self.waiting += count
        try:
            yield
        finally:
            self.waiting -= count


async def predict_results(engine, body: PredictRequest, queue: PredictQueue) -> dict[str, list[dict]]:
    """What `/predict` answers, by either path: one result per text, counted by intent for Prometheus."""
    texts = [body.text] if body.text is not None else body.texts or []
    with queue.admit(len(texts)):
        results = await engine.apredict(texts)
    for result in results:
        metrics.NLU_PREDICTIONS.labels(result.intent).inc()
    return {"results": [r.to_dict() for r in results]}


router = APIRouter()


@router.post(PATH, response_model=PredictResponse)
async def predict(body: PredictRequest, components: ComponentsDep, request: Request) -> JSONResponse:
    # The documented route (no docstring: it would change the schema): a body that does not validate is 422,
    # then 503 (NotReady) while no model is loaded, or 503 (PredictQueueFull) while the queue is full.
    # The results are built here, so they need no validation on the way out (response_model documents them).
    queue = (request.scope.get("state") or {}).get(QUEUE_STATE)
    if not isinstance(queue, PredictQueue):
        raise RuntimeError("POST /predict is served only behind PredictShortPath, which holds its queue")
    return JSONResponse(await predict_results(components.need("engine"), body, queue))


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

    def __init__(self, app: ASGIApp, *, engine: Callable[[], Any | None], max_body: int, route: Any, queue: int):
        self.app = app
        self.engine = engine  # the loaded engine, or None while there is none
        self.max_body = max_body
        self.route = route  # stored in the scope, as the router would, for the latency metric's label
        self.queue = PredictQueue(queue)  # one per app, so per worker: shared with the route through the scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})[QUEUE_STATE] = self.queue
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
        try:
            payload = await predict_results(engine, request, self.queue)
        except PredictQueueFull as full:  # as FastAPI renders the route's HTTPException
            await _send_json(send, {"detail": full.detail}, full.status_code, full.headers)
            return
        await _send_json(send, payload)

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


async def _send_json(send: Callable[[Message], Awaitable[None]], payload: dict, status: int = 200,
                     headers: dict[str, str] | None = None) -> None:
    # As Starlette's JSONResponse renders it, so both paths answer byte for byte alike.
    data = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    extra = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": data})
