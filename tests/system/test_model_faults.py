"""Model files that do not load, through the real admin API and a real server start: each is named, and nothing
changes; and FRONTDESK_MODELS_ROOT keeps deploys and checks to the directories under it.

A deploy of a corrupt `model.onnx` answered 500, and a server started on one stayed 503 with nothing named.
The fixtures' model directories are cached and shared: every damage is done to a copy.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from bot.keys import Keys
from tests.support.fleet import until
from tests.support.serverutil import free_port, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
TOKEN = "model-faults-token-0123456789abcdef0123"
FAQ = [{"id": "hours", "question": "When are you open?", "answer": "9 to 5.", "alternates": ["opening hours"]}]
# The file damaged, and what it gets: random bytes, or JSON the tokenizer library cannot build a tokenizer from.
DAMAGES = {"model.onnx": os.urandom(4096), "model.safetensors": os.urandom(4096),
           "tokenizer.json": b'{"version": "1.0"}', "tokenizer_config.json": b"{not json"}


def damaged(model: Path, folder: Path, name: str) -> Path:
    copy = folder / f"bad-{name.replace('.', '-')}"
    shutil.copytree(model, copy)
    (copy / name).write_bytes(DAMAGES[name])
    return copy


def environment(model: Path, tmp_path: Path, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    faq = tmp_path / "faq.yaml"
    faq.write_text(yaml.safe_dump(FAQ))
    return {"FRONTDESK_MODEL_DIR": str(model), "FRONTDESK_KB": str(faq), "REDIS_URL": redis_url,
            "FRONTDESK_REDIS_PREFIX": prefix, "FRONTDESK_ADMIN_TOKEN": TOKEN, "FRONTDESK_HOME": str(tmp_path / "h"),
            "FRONTDESK_DEVICE": "cpu", "FRONTDESK_IP_RATE_LIMIT": "0/60", **extra}


def test_model_files_that_do_not_load_are_refused_by_name_and_the_serving_model_stays(tiny_model, redis_url,
                                                                                      redis_prefix, tmp_path):
    from adapters.runtime.settings import Settings
    from tests.support.liveserver import live_app

    root = tmp_path / "models"
    root.mkdir()
    outside = tmp_path / "elsewhere"
    shutil.copytree(tiny_model, outside)  # a good model, but not under the root
    (root / "link").symlink_to(outside)
    settings = Settings(**environment(tiny_model, tmp_path, redis_url, redis_prefix,
                                      FRONTDESK_MODELS_ROOT=str(root)))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with live_app(settings) as url:
        before = httpx.get(f"{url}/admin/model", headers=auth).json()

        def predicts_with(version: str) -> None:
            answered = httpx.post(f"{url}/predict", json={"text": "where is my order"}, timeout=60)
            assert answered.status_code == 200 and answered.json()["results"][0]["model_version"] == version

        predicts_with(before["version"])
        for name in DAMAGES:
            bad = damaged(tiny_model, root, name)
            for route, body in (("deploy", {"path": str(bad), "force": True}), ("check", {"candidate": str(bad)})):
                refused = httpx.post(f"{url}/admin/model/{route}", json=body, headers=auth, timeout=120)
                assert refused.status_code == 422, (name, route, refused.text)
                assert name in refused.json()["detail"] and "nothing changed" in refused.json()["detail"]
        for path in (outside, root / ".." / "elsewhere", root / "link"):  # elsewhere; through `..`; through a link
            for route, body in (("deploy", {"path": str(path), "force": True}), ("check", {"candidate": str(path)})):
                refused = httpx.post(f"{url}/admin/model/{route}", json=body, headers=auth, timeout=120)
                assert refused.status_code == 403 and "FRONTDESK_MODELS_ROOT" in refused.json()["detail"], path
        # Nothing changed: the same model answers, no version was recorded, nothing to restore.
        predicts_with(before["version"])
        after = httpx.get(f"{url}/admin/model", headers=auth).json()
        assert (after["version"], after["previous"]) == (before["version"], None)
        assert redis.Redis.from_url(redis_url).get(Keys(redis_prefix).model("desired")) is None
        # The configured model is always allowed (deploying it is how to go back to it), and a good copy under
        # the root deploys.
        good = root / "good"
        shutil.copytree(tiny_model, good)
        deployed = httpx.post(f"{url}/admin/model/deploy", json={"path": str(good), "force": True}, headers=auth,
                              timeout=120)
        assert deployed.status_code == 200, deployed.text
        back = httpx.post(f"{url}/admin/model/deploy", json={"path": str(tiny_model), "force": True}, headers=auth,
                          timeout=120)
        assert back.status_code == 200, back.text


def test_a_corrupt_model_onnx_at_start_is_named_by_readyz_and_the_log(tiny_model, redis_url, redis_prefix, tmp_path):
    bad = damaged(tiny_model, tmp_path, "model.onnx")
    port, log = free_port(), tmp_path / "serve.log"
    process = start_server(environment(bad, tmp_path, redis_url, redis_prefix), port, log)
    answers: list[httpx.Response] = []

    def model_error_named() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            answers.append(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5))
        except httpx.HTTPError:
            return False
        return "model" in answers[-1].json()["errors"]

    try:
        until(model_error_named, 180)
        body = answers[-1].json()
        assert answers[-1].status_code == 503 and "model" in body["missing"]
        assert str(bad / "model.onnx") in body["errors"]["model"] and "corrupt" in body["errors"]["model"]
        until(lambda: str(bad / "model.onnx") in log.read_text(), 30)
        time.sleep(2)  # and it stays that way: not ready, still named (no model loads by itself)
        again = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert again.status_code == 503 and str(bad / "model.onnx") in again.json()["errors"]["model"]
    finally:
        stop_server(process)
