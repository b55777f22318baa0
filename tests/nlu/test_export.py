"""`frontdesk export`: an int8 ONNX model that serves through onnxruntime and agrees with PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from nlu.engine import load_engine, load_predictor
from nlu.onnx_backend import OnnxBackend
from nlu.predictor import TorchBackend
from tests.support.serverutil import ROOT

pytestmark = pytest.mark.slow

TEXTS = ["where is my order", "i want my money back", "hello", "what is the capital of france", "",
         "my delivery is late where is it", "thank you so much"]


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "int8"
    done = subprocess.run([sys.executable, "-m", "adapters.cli", "export", "--model", str(tiny_model),
                           "--out", str(out), "--quantize", "int8"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def test_int8_export_serves_through_onnxruntime_and_agrees_with_pytorch(tiny_model, exported):
    info = json.loads((exported / "onnx_export.json").read_text())
    assert info["quantize"] == "int8"
    assert info["fused"]  # attention, layer norms and GELU fused into onnxruntime's kernels before quantizing
    torch_predictor = load_predictor(tiny_model, "cpu")
    onnx_predictor = load_predictor(exported, "cpu")
    assert isinstance(torch_predictor.backend, TorchBackend)
    assert isinstance(onnx_predictor.backend, OnnxBackend)  # auto picks onnxruntime on the CPU
    a, b = torch_predictor.backend.score(TEXTS), onnx_predictor.backend.score(TEXTS)
    assert a.intent_probs.shape == b.intent_probs.shape
    # int8 moves probabilities a little, never the ranking where the model is clear (the tiny test model is
    # torn on some of these texts, and a few hundredths decide those either way).
    top2 = np.sort(a.intent_probs, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.3
    assert clear.sum() >= 4, a.intent_probs
    assert np.abs(a.intent_probs - b.intent_probs)[clear].max() < 0.15
    assert (a.intent_probs.argmax(1) == b.intent_probs.argmax(1))[clear].all()
    decided = [[r.intent for r in p.predict(TEXTS)] for p in (torch_predictor, onnx_predictor)]
    assert [x for x, c in zip(decided[0], clear, strict=True) if c] == [
        x for x, c in zip(decided[1], clear, strict=True) if c]
    # The same directory can still be served by PyTorch when asked.
    assert isinstance(load_predictor(exported, "cpu", backend="torch").backend, TorchBackend)


def test_engine_batches_onnx_like_pytorch(exported):
    engine = load_engine(exported, "cpu", max_batch=4)
    try:
        results = engine.predict(TEXTS * 3)
        assert [r.text for r in results] == TEXTS * 3
    finally:
        engine.close()


def test_the_onnx_path_tokenizes_exactly_as_the_model_s_tokenizer(exported):
    from nlu.artifacts import load_bundle
    from nlu.onnx_backend import token_ids

    bundle = load_bundle(exported, "cpu")
    texts = [*TEXTS, "Ünïcödé café, naïve résumé!", "word " * 600]  # accents, and one past max_length
    expected = bundle.tokenizer(texts, truncation=True, max_length=bundle.max_length)["input_ids"]
    assert token_ids(bundle.tokenizer, bundle.max_length)(texts) == expected
    assert len(expected[-1]) == bundle.max_length


def test_export_errors_are_clear(tmp_path, tiny_model):
    missing = subprocess.run([sys.executable, "-m", "adapters.cli", "export", "--model", str(tmp_path / "nope"),
                              "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    wrong = subprocess.run([sys.executable, "-m", "adapters.cli", "export", "--model", str(tiny_model),
                            "--out", str(tmp_path / "o"), "--quantize", "int4"], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert wrong.returncode != 0 and "int8" in wrong.stderr
    with pytest.raises(Exception, match="frontdesk export"):
        load_predictor(tiny_model, "cpu", backend="onnx")


def test_a_fused_graph_that_disagrees_is_dropped_for_the_unfused_one(tiny_model, tmp_path, monkeypatch):
    import nlu.export

    monkeypatch.setattr(nlu.export, "FUSION_TOLERANCE", -1.0)  # no fused graph can pass: take the fallback path
    out = nlu.export.export_onnx(tiny_model, tmp_path / "plain", "int8")
    assert json.loads((out / "onnx_export.json").read_text())["fused"] is False
    served = load_predictor(out, "cpu")
    assert isinstance(served.backend, OnnxBackend)
    reference = load_predictor(tiny_model, "cpu", backend="torch")
    assert [r.intent for r in served.predict(TEXTS)] == [r.intent for r in reference.predict(TEXTS)]
