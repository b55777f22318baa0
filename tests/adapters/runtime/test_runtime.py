"""What `frontdesk run` prepares on a fresh machine: the demo model, trained once, atomically."""

from __future__ import annotations

import json
import threading

import pytest

from adapters.runtime.demo_model import ensure_demo_model
from adapters.runtime.settings import Settings
from nlu.distill import DistillConfig
from nlu.engine import load_predictor
from nlu.onnx_backend import OnnxBackend
from nlu.train import TrainConfig

pytestmark = pytest.mark.slow


def test_demo_model_is_built_once_even_with_concurrent_starts(tmp_path):
    settings = Settings(FRONTDESK_HOME=tmp_path, FRONTDESK_DEVICE="cpu")
    config = TrainConfig(epochs=1, max_steps=2, batch_size=16, device="cpu")
    distilling = DistillConfig(epochs=1, max_steps=2, device="cpu")
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(
        ensure_demo_model(settings, config=config, distill_config=distilling))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [settings.demo_model_dir] * 2
    model_files = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert model_files == [".demo-model.lock", "demo", "demo-teacher"]  # no half-written staging folder left
    # What is served is the compressed path: a 4-layer student of the 6-layer model, as int8 ONNX.
    predictor = load_predictor(settings.demo_model_dir, "cpu")
    assert isinstance(predictor.backend, OnnxBackend)
    assert predictor.bundle.model is None  # served by its graph: the PyTorch weights are not loaded
    layers = json.loads((settings.demo_model_dir / "config.json").read_text())["num_hidden_layers"]
    assert layers == settings.demo_layers == 4
    assert load_predictor(settings.demo_teacher_dir, "cpu").bundle.model.encoder.config.num_hidden_layers == 6
    assert "order_status" in predictor.bundle.intent_labels and "oos" in predictor.bundle.intent_labels
    stamp = (settings.demo_model_dir / "model.safetensors").stat().st_mtime
    assert ensure_demo_model(settings, config=config) == settings.demo_model_dir  # present: not rebuilt
    assert (settings.demo_model_dir / "model.safetensors").stat().st_mtime == stamp
