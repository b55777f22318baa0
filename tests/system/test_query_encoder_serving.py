"""A server with FRONTDESK_QUERY_ENCODER: customers' questions go through it and are answered; a damaged one
keeps /readyz at 503, naming the file, as a model that cannot load does (real app, real uvicorn, real Redis)."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
import yaml

from adapters.http.app import create_app
from adapters.runtime.settings import Settings
from tests.support.liveserver import live_app, uvicorn_thread
from tests.support.rest import CHAT_AUTH, CHAT_TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.system, pytest.mark.timeout(900)]
TOKEN = "query-encoder-admin-token-0123456789abcdef"
FAQ = [{"id": "hours", "question": "When are you open?", "answer": "Every day from 9 to 5.",
        "alternates": ["opening hours", "what time do you close"]},
       {"id": "returns", "question": "How do I return an item?", "answer": "Send it back within 30 days.",
        "alternates": ["can I send something back", "return policy"]}]


def settings(tmp_path, model, redis_url, prefix, encoder) -> Settings:
    faq = tmp_path / "faq.yaml"
    faq.write_text(yaml.safe_dump(FAQ))
    return Settings(FRONTDESK_MODEL_DIR=str(model), FRONTDESK_KB=str(faq), REDIS_URL=redis_url,
                    FRONTDESK_REDIS_PREFIX=prefix, FRONTDESK_ADMIN_TOKEN=TOKEN, FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,
                    FRONTDESK_HOME=str(tmp_path / "home"), FRONTDESK_DEVICE="cpu", FRONTDESK_IP_RATE_LIMIT="0/60",
                    FRONTDESK_QUERY_ENCODER=str(encoder))


def test_questions_go_through_the_query_encoder_and_are_answered(demo_model, query_encoder_dir, redis_url,
                                                                 redis_prefix, tmp_path):
    with live_app(settings(tmp_path, demo_model, redis_url, redis_prefix, query_encoder_dir)) as url:
        status = httpx.get(f"{url}/admin/faq", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert status["encoders"]["questions"]["path"] == str(query_encoder_dir)
        assert status["encoders"]["questions"]["agreement"]["mean_cosine"] > 0.9
        replies = httpx.post(f"{url}/chat", json={"sender": "c1", "message": "what are your opening hours on weekdays"},
                             headers=CHAT_AUTH, timeout=60).json()["replies"]
        assert any("9 to 5" in r["text"] for r in replies), replies


def test_a_damaged_query_encoder_keeps_the_server_unready_and_is_named(tiny_model, query_encoder_dir, redis_url,
                                                                       redis_prefix, tmp_path):
    broken = tmp_path / "encoder"
    shutil.copytree(query_encoder_dir, broken)
    (broken / "model.onnx").write_bytes(b"\x00not a graph" * 50)
    app = create_app(settings(tmp_path, tiny_model, redis_url, redis_prefix, broken))
    with uvicorn_thread(app) as (port, _):
        deadline, body = time.monotonic() + 240, {}
        while "query_encoder" not in body.get("errors", {}):
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
            answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            body = answer.json()
        assert answer.status_code == 503 and "query_encoder" in body["missing"]
        assert str(broken / "model.onnx") in body["errors"]["query_encoder"]
        time.sleep(2)  # and it stays so: nothing quietly falls back to the slow path and calls itself ready
        again = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert again.status_code == 503 and "query_encoder" in again.json()["missing"]
