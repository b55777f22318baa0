"""Ensembles: several fine-tuned models averaged, served like one model directory."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nlu.engine import load_predictor
from nlu.ensemble import EnsembleBackend
from tests.support.serverutil import ROOT

pytestmark = pytest.mark.slow

TEXTS = ["where is my order", "refund please", "hello", "what is the capital of france"]


@pytest.fixture(scope="module")
def second_model(tiny_data, tmp_path_factory):
    from nlu.data import read_labelled_csv
    from nlu.fit import fit
    from nlu.train import TrainConfig

    intents, sentiment = tiny_data
    out = tmp_path_factory.mktemp("model") / "tiny-seed7"
    fit(read_labelled_csv(intents, "intent"), read_labelled_csv(sentiment, "sentiment"), out,
        TrainConfig(epochs=3, batch_size=8, max_steps=9, dev_fraction=0.2, lr=1e-4, device="cpu", seed=7))
    return out


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adapters.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_ensemble_averages_its_members(tiny_model, second_model, tmp_path):
    done = cli("ensemble", "--model", str(tiny_model), "--model", str(second_model), "--out", str(tmp_path / "ens"))
    assert done.returncode == 0, done.stderr
    ensemble = load_predictor(tmp_path / "ens", "cpu")
    assert isinstance(ensemble.backend, EnsembleBackend)
    a = load_predictor(tiny_model, "cpu").backend.score(TEXTS)
    b = load_predictor(second_model, "cpu").backend.score(TEXTS)
    both = ensemble.backend.score(TEXTS)
    np.testing.assert_allclose(both.intent_probs, (a.intent_probs + b.intent_probs) / 2, atol=1e-5)
    np.testing.assert_allclose(both.sentiment_probs, (a.sentiment_probs + b.sentiment_probs) / 2, atol=1e-5)
    assert [r.text for r in ensemble.predict(TEXTS)] == TEXTS


def test_ensemble_refuses_mismatched_or_missing_members(tiny_model, tmp_path):
    lonely = cli("ensemble", "--model", str(tiny_model), "--out", str(tmp_path / "one"))
    assert lonely.returncode != 0 and "at least two" in lonely.stderr
    missing = cli("ensemble", "--model", str(tiny_model), "--model", str(tmp_path / "nope"),
                  "--out", str(tmp_path / "x"))
    assert missing.returncode != 0 and "not a model directory" in missing.stderr and "Traceback" not in missing.stderr
