"""`POST /predict`'s guards, attacked on a real uvicorn server with the real model and Redis: its token, its own
per-address limit and its bounded queue (adapters/http/api_gate.py, adapters/http/predict_api.py).

127.0.0.1 is the trusted proxy here, so each request names its client in X-Forwarded-For: one address
floods the limit, and the queue is filled by requests from many addresses at once, which only the
queue can refuse.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from adapters.http.app import create_app
from adapters.runtime.settings import Settings
from tests.support.liveserver import live_app
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "predict-admin-token-0123456789abcdef0123"
PREDICT_TOKEN = "predict-token-0123456789abcdef0123456789"
PREDICT = {"Authorization": f"Bearer {PREDICT_TOKEN}"}
QUEUE = 8
LONG = "where is my parcel, it has not arrived and I need it for a birthday on saturday " * 12


@pytest.fixture(scope="module")
def url(tiny_model, redis_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("predict-home")
    kb = home / "faq.yaml"
    kb.write_text(yaml.safe_dump([{"id": "hours", "question": "When are you open?", "answer": "9 to 5."}]))
    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=f"unix://{redis_server.socket_file}",
                        FRONTDESK_REDIS_PREFIX=f"predict-{uuid.uuid4().hex[:6]}", FRONTDESK_HOME=home,
                        FRONTDESK_KB=kb, FRONTDESK_DEVICE="cpu", FRONTDESK_ADMIN_TOKEN=ADMIN_TOKEN,
                        FRONTDESK_CHAT_TOKEN=CHAT_TOKEN, FRONTDESK_PREDICT_TOKEN=PREDICT_TOKEN,
                        FRONTDESK_TRUSTED_PROXIES="127.0.0.1", FRONTDESK_PREDICT_RATE_LIMIT="3/60",
                        FRONTDESK_PREDICT_QUEUE=QUEUE, FRONTDESK_IP_RATE_LIMIT="100000/60")
    with live_app(settings) as base:
        yield base


def predict(url: str, body: dict, client: str, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/predict", json=body, headers={"X-Forwarded-For": client, **(headers or {})},
                      timeout=120)


def test_predict_needs_its_token_or_the_admin_token_when_one_is_set(url):
    wrong = [{}, {"Authorization": "Bearer not-the-token-0123456789abcdef0123"}, CHAT_AUTH,
             {"Authorization": f"Bearer {PREDICT_TOKEN}x"}, {"Authorization": PREDICT_TOKEN}]
    for index, headers in enumerate(wrong):
        for body in ({"text": "hello"}, {"text": "a", "texts": ["b"]}):  # a body the route would refuse: still 401
            response = predict(url, body, f"192.0.2.{index}", headers)
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "FRONTDESK_PREDICT_TOKEN" in response.json()["detail"]
    for index, headers in enumerate((PREDICT, {"Authorization": f"Bearer {ADMIN_TOKEN}"})):
        response = predict(url, {"texts": ["where is my order", "hello"]}, f"192.0.2.10{index}", headers)
        assert response.status_code == 200 and len(response.json()["results"]) == 2, response.text


def test_without_a_predict_token_set_predict_is_open(tmp_path):
    bare = TestClient(create_app(Settings(FRONTDESK_HOME=tmp_path)))  # nothing loaded: the route's own 503
    response = bare.post("/predict", json={"text": "hello"})
    assert response.status_code == 503 and "www-authenticate" not in response.headers


def test_predict_has_its_own_limit_per_client_address(url):
    statuses = [predict(url, {"text": "hello"}, "198.51.100.7", PREDICT) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert "FRONTDESK_PREDICT_RATE_LIMIT" in statuses[-1].json()["detail"]
    assert 1 <= int(statuses[-1].headers["Retry-After"]) <= 60
    assert predict(url, {"text": "hello"}, "198.51.100.8", PREDICT).status_code == 200  # another client
    # Its own count: the limited client may still use the rest of the service.
    assert httpx.get(f"{url}/console", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 200
    chat = httpx.post(f"{url}/chat", json={"sender": "limited", "message": "hello"},
                      headers={"X-Forwarded-For": "198.51.100.7", **CHAT_AUTH}, timeout=60)
    assert chat.status_code == 200


def texts_classified() -> float:
    return REGISTRY.get_sample_value("frontdesk_nlu_batch_size_sum") or 0.0


def test_a_full_queue_answers_503_at_once_and_queues_nothing(url):
    before = texts_classified()
    too_many = predict(url, {"texts": ["hello"] * (QUEUE + 1)}, "203.0.113.200", PREDICT)
    assert too_many.status_code == 503 and "FRONTDESK_PREDICT_QUEUE" in too_many.json()["detail"]
    # Many requests at once, each from its own address (so the per-address limit refuses none) and each holding
    # half the queue while the model works on it.
    with ThreadPoolExecutor(40) as pool:
        responses = list(pool.map(lambda n: predict(url, {"texts": [LONG] * (QUEUE // 2)}, f"203.0.113.{n}",
                                                    PREDICT), range(40)))
    answered = [r for r in responses if r.status_code == 200]
    full = [r for r in responses if r.status_code == 503]
    assert len(answered) + len(full) == len(responses), {r.status_code for r in responses}
    assert answered and full, (len(answered), len(full))
    for response in full:
        assert "FRONTDESK_PREDICT_QUEUE" in response.json()["detail"] and response.headers["Retry-After"] == "1"
    # Only the admitted requests' texts reached the model (the refused request above included).
    assert texts_classified() - before == len(answered) * (QUEUE // 2)
    # Room comes back once answered: a request that fills the whole queue goes through.
    assert predict(url, {"texts": ["hello"] * QUEUE}, "203.0.113.201", PREDICT).status_code == 200
