"""A model deployed and restored live on two worker processes under a stream of /predict calls."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import INTENT_ROWS, SECOND_ROWS
from tests.support.serverutil import free_port, start_server, stop_server, wait_ready

TOKEN = "deploy-admin-token-0123456789abcdef01"
@pytest.fixture()
def two_workers(tiny_model, redis_url, redis_prefix, tmp_path):
    kb = tmp_path / "faq.yaml"
    kb.write_text(yaml.safe_dump([{"id": "hours", "question": "When are you open?", "answer": "9 to 5.",
                                   "alternates": ["opening hours", "what time do you close"]}]))
    env = {"FRONTDESK_MODEL_DIR": str(tiny_model), "FRONTDESK_KB": str(kb), "REDIS_URL": redis_url,
           "FRONTDESK_REDIS_PREFIX": redis_prefix, "FRONTDESK_ADMIN_TOKEN": TOKEN,
           "FRONTDESK_HOME": str(tmp_path / "home"), "FRONTDESK_DEVICE": "cpu", "FRONTDESK_IP_RATE_LIMIT": "0/60"}
    servers = []
    try:
        for i in range(2):
            port = free_port()
            servers.append((f"http://127.0.0.1:{port}", start_server(env, port, tmp_path / f"worker{i}.log")))
        for url, process in servers:
            wait_ready(url, process)
        yield [url for url, _ in servers]
    finally:
        for _, process in servers:
            stop_server(process)


def admin(url: str, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{url}{path}", json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=120)


class PredictLoad:
    """Clients calling /predict on every worker until stopped; every failure and version seen is kept."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.failures: list[str] = []
        self.versions: set[str] = set()
        self.calls = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url,), daemon=True) for url in urls]

    def _run(self, url: str) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(f"{url}/predict", json={"texts": ["where is my order", "cancel it"]})
                    if response.status_code != 200:
                        self.failures.append(f"{url}: {response.status_code} {response.text[:200]}")
                    else:
                        self.versions.update(r["model_version"] for r in response.json()["results"])
                except httpx.HTTPError as exc:
                    self.failures.append(f"{url}: {type(exc).__name__}: {exc}")
                self.calls += 1
                time.sleep(0.02)

    def __enter__(self) -> PredictLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def wait_for_fleet(url: str, version: str, workers: int = 2, seconds: float = 30.0) -> float:
    """Seconds until `workers` workers report serving `version` (fails the test after `seconds`)."""
    started = time.monotonic()
    while True:
        status = admin(url, "GET", "/admin/model").json()
        serving = [w for w in status["workers"] if w["version"] == version]
        if len(serving) >= workers and len(status["workers"]) == workers:
            return time.monotonic() - started
        assert time.monotonic() - started < seconds, f"workers not on {version}: {status['workers']}"
        time.sleep(0.2)


def test_deploy_and_restore_reach_every_worker_with_no_failed_call(two_workers, tiny_model, second_model,
                                                                  tmp_path, monkeypatch):
    from adapters.cli.main import app
    from nlu.versions import model_version

    first, second = two_workers
    old, new = model_version(tiny_model), model_version(second_model)
    assert old != new and old.startswith(tiny_model.name + "-")

    status = admin(first, "GET", "/admin/model").json()
    assert status["version"] == old and status["previous"] is None
    wait_for_fleet(first, old)
    assert httpx.post(f"{second}/predict", json={"text": "hello"}).json()["results"][0]["model_version"] == old

    # Not a model: refused with 422 naming the problem, and nothing changes anywhere.
    not_model = tmp_path / "not-a-model"
    not_model.mkdir()
    (not_model / "config.json").write_text("{}")
    for path, needle in ((not_model, "missing"), (tmp_path / "nowhere", "does not exist"),
                         ("bad\x00name", "not a usable"), ("0" * 300, "cannot read")):
        refused = admin(first, "POST", "/admin/model/deploy", {"path": str(path)})
        assert refused.status_code == 422 and needle in refused.json()["detail"] and "path" in refused.json()["detail"]
    assert admin(first, "POST", "/admin/model/deploy", {"nope": 1}).status_code == 422
    assert admin(first, "GET", "/admin/model").json()["version"] == old
    assert admin(first, "POST", "/admin/model/restore").status_code == 409  # nothing deployed yet
    wait_for_fleet(second, old)

    with PredictLoad([first, second]) as load:
        time.sleep(1.0)
        deployed = admin(first, "POST", "/admin/model/deploy", {"path": str(second_model)})
        assert deployed.status_code == 200, deployed.text
        assert deployed.json()["version"] == new
        took = wait_for_fleet(second, new, seconds=20)
        assert took < 20
        print(f"deploy answered in {deployed.elapsed.total_seconds():.2f} s; both workers on it {took:.2f} s later")
        for url in (first, second):
            result = httpx.post(f"{url}/predict", json={"text": "please cancel my order"}).json()["results"][0]
            assert result["model_version"] == new
            names = {t["intent"] for t in result["top_intents"]} | {result["intent"]}
            assert names <= set(SECOND_ROWS) and names & {"cancel_order", "change_address"}
            exposed = httpx.get(f"{url}/metrics").text
            assert f'frontdesk_model_info{{version="{new}"}} 1.0' in exposed
        time.sleep(1.0)

        # Restore from the terminal (token from the environment), then status from the terminal.
        monkeypatch.setenv("FRONTDESK_ADMIN_TOKEN", TOKEN)
        runner = CliRunner()
        restored = runner.invoke(app, ["model", "restore", "--url", second])
        assert restored.exit_code == 0 and old in restored.output, restored.output
        wait_for_fleet(first, old, seconds=20)
        shown = runner.invoke(app, ["model", "status", "--url", first, "--json"])
        assert shown.exit_code == 0, shown.output
        import json

        body = json.loads(shown.stdout)
        assert body["version"] == old and body["previous"] == new
        assert sorted(w["version"] for w in body["workers"]) == [old, old]
        for url in (first, second):
            result = httpx.post(f"{url}/predict", json={"text": "where is my order"}).json()["results"][0]
            assert result["model_version"] == old and result["intent"] in INTENT_ROWS
        time.sleep(0.5)
    assert load.failures == [] and load.calls > 20
    assert {old, new} <= load.versions


def test_versions_follow_the_model_files_not_the_reports(tiny_model, tmp_path):
    import shutil

    from nlu.artifacts import ModelLoadError
    from nlu.ensemble import write_ensemble
    from nlu.versions import load_checked, model_version

    copy = tmp_path / tiny_model.name
    shutil.copytree(tiny_model, copy)
    assert model_version(copy) == model_version(tiny_model)  # same files, same name: same version anywhere
    (copy / "metrics.json").write_text("{}")  # reports are not the model
    assert model_version(copy) == model_version(tiny_model)
    (copy / "thresholds.json").write_text((copy / "thresholds.json").read_text().replace("0", "1", 1))
    assert model_version(copy) != model_version(tiny_model)

    ensemble = write_ensemble([tiny_model, copy], tmp_path / "ens")
    before = model_version(ensemble)
    predictor = load_checked(ensemble, "cpu")
    assert predictor.version == before and predictor.predict(["hello"])[0].model_version == before
    (copy / "labels.json").write_text((copy / "labels.json").read_text() + " ")
    assert model_version(ensemble) != before  # a member changed: so did the ensemble

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "heads.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_checked(broken, "cpu")


def test_a_deployed_model_recalibrates_the_faq_bars_and_the_escalation_line(tiny_model, second_model, redis_url,
                                                                             redis_prefix, tmp_path):
    """The answer bars and the escalation line are chosen on what the intent model says about the dev questions:
    after a deploy they are chosen again with the model that now decides beside them, and after a restore too."""
    from adapters.runtime.settings import DEMO_KB, Settings
    from nlu.versions import model_version
    from tests.support.liveserver import live_app

    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, FRONTDESK_KB=DEMO_KB, REDIS_URL=redis_url,
                        FRONTDESK_REDIS_PREFIX=redis_prefix, FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_HOME=tmp_path / "home", FRONTDESK_DEVICE="cpu", FRONTDESK_IP_RATE_LIMIT="0/60")

    def calibrated_with(url: str, version: str) -> dict:
        deadline = time.monotonic() + 120
        while True:
            status = admin(url, "GET", "/admin/faq").json()
            if status["calibrated_with"] == version == status["escalation"]["calibrated_with"]:
                return status
            assert time.monotonic() < deadline, status
            time.sleep(0.5)

    with live_app(settings) as url:
        first = calibrated_with(url, model_version(tiny_model))  # the demo store's tone-labelled dev questions
        assert first["escalation"]["method"].startswith("calibrated on")
        assert admin(url, "POST", "/admin/model/deploy", {"path": str(second_model), "force": True}).status_code == 200
        second = calibrated_with(url, model_version(second_model))
        assert second["escalation"]["method"].startswith("calibrated on")
        assert second["version"]["version"] == first["version"]["version"]  # same entries, bars chosen again
        assert admin(url, "POST", "/admin/model/restore").status_code == 200
        calibrated_with(url, model_version(tiny_model))


def test_deploys_at_once_are_serialized_on_one_worker_and_across_workers(two_workers, tiny_model, second_model,
                                                                         redis_url, redis_prefix, tmp_path):
    """Two deploys at once, to two workers and then to one: each applies after the other, never both against the
    same starting point. Recorded in order (the second's previous is the first), and every worker serves the
    last. Across workers a lock in Redis orders them (`ModelSync.exclusive`); within one, a lock per process."""
    import json
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    import redis

    from bot.keys import Keys
    from nlu.versions import model_version

    third = tmp_path / "third-model"  # the tiny model's weights, another version
    shutil.copytree(tiny_model, third)
    (third / "training_config.json").write_text((third / "training_config.json").read_text() + "\n")
    versions = {model_version(second_model), model_version(third)}
    assert len(versions) == 2 and model_version(tiny_model) not in versions
    client = redis.Redis.from_url(redis_url)
    first, second = two_workers
    for targets in ((first, second), (first, first)):
        # Both start from the configured model: unserialized, both would record it as their previous.
        assert admin(first, "POST", "/admin/model/deploy", {"path": str(tiny_model), "force": True}).status_code == 200
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda pair: admin(pair[0], "POST", "/admin/model/deploy",
                                                       {"path": str(pair[1]), "force": True}),
                                    zip(targets, (second_model, third), strict=True)))
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        desired = json.loads(client.get(Keys(redis_prefix).model("desired")))
        # One after the other: the last one's previous is the one before it, not what served when both began, and
        # it was compared with that one (run side by side, both would have been compared with the tiny model).
        assert {desired["current"]["version"], desired["previous"]["version"]} == versions, desired
        last = next(a.json() for a in answers if a.json()["version"] == desired["current"]["version"])
        assert last["check"]["serving"] == desired["previous"]["version"], last["check"]
        wait_for_fleet(first, desired["current"]["version"], seconds=60)
