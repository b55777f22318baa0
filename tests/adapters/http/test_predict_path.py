"""`POST /predict`'s short path (adapters/http/predict_api.py): what it answers itself, and what it hands to FastAPI
with the body intact."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from adapters.http.predict_api import PredictShortPath

CAP = 4096
QUEUE = 8  # texts waiting for the model: tests/adapters/http/test_predict_limits.py fills it
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def engine(demo_engine):
    return demo_engine


def client_for(engine) -> tuple[TestClient, list[bytes]]:
    """The short path in front of an app that records every body handed to it (as FastAPI would read it)."""
    handed: list[bytes] = []

    async def fallback(request: Request) -> JSONResponse:
        handed.append(await request.body())
        return JSONResponse({"handed": True}, status_code=299)

    inner = Starlette(routes=[Route("/predict", fallback, methods=["GET", "POST"])])
    app = PredictShortPath(inner, engine=lambda: engine, max_body=CAP, route=None, queue=QUEUE)
    return TestClient(app), handed


def test_a_valid_request_is_answered_by_the_short_path_with_the_engines_results(engine):
    client, handed = client_for(engine)
    for headers in (JSON, {"content-type": "application/json; charset=utf-8"},
                    {"content-type": "application/vnd.api+json"}):
        response = client.post("/predict", content=json.dumps({"texts": ["where is my order", "hello"]}),
                               headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        results = response.json()["results"]
        expected = [r.to_dict() for r in engine.predict(["where is my order", "hello"])]
        assert [r["intent"] for r in results] == [r["intent"] for r in expected]
        assert results[0].keys() == expected[0].keys()
    one = client.post("/predict", json={"text": "café ☕"})
    assert one.status_code == 200 and one.json()["results"][0]["text"] == "café ☕"
    assert handed == []


def test_anything_else_reaches_the_route_with_its_body_unchanged(engine):
    client, handed = client_for(engine)
    bodies = [
        (b'{"text": "a", "texts": ["b"]}', JSON),  # does not validate: the route's 422 says why
        (b'{"text": NaN}', JSON),  # json.loads accepts it, strict JSON does not
        (b"{", JSON),
        (b'{"text": "hello"}', {"content-type": "text/plain"}),  # FastAPI refuses bodies not declared JSON
        (b'{"text": "hello"}', {}),
    ]
    for body, headers in bodies:
        response = client.post("/predict", content=body, headers=headers)
        assert response.status_code == 299, (body, response.text)
        assert handed[-1] == body
    assert client.get("/predict").status_code == 299  # other methods: the router's business


def test_a_body_over_the_cap_is_handed_on_whole_sent_at_once_or_in_chunks(engine):
    client, handed = client_for(engine)
    big = json.dumps({"text": "x" * (CAP + 10)}).encode()
    assert client.post("/predict", content=big, headers=JSON).status_code == 299
    assert handed[-1] == big  # declared too long: not read at all here

    def chunks():
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    assert client.post("/predict", content=chunks(), headers=JSON).status_code == 299  # chunked: no length
    assert handed[-1] == big  # read past the cap, then replayed in front of the rest


def test_without_a_model_the_route_answers(engine):
    handed: list[bytes] = []

    async def fallback(request: Request) -> JSONResponse:
        handed.append(await request.body())
        return JSONResponse({"detail": "model not loaded"}, status_code=503)

    inner = Starlette(routes=[Route("/predict", fallback, methods=["POST"])])
    client = TestClient(PredictShortPath(inner, engine=lambda: None, max_body=CAP, route=None, queue=QUEUE))
    assert client.post("/predict", json={"text": "hello"}).status_code == 503
    assert handed == [b'{"text":"hello"}']
