"""A real fine-tuned model: save/load round trip, batching, out of scope, corrupt directories."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest
from transformers import AutoModel

from nlu.artifacts import ModelLoadError, load_bundle
from nlu.engine import InferenceEngine, load_predictor

PROBES = ["where is my parcel", "refund please", "hello!", "what's the capital of peru",
          "this is awful, where is my order", "", "🙂🙂🙂", "a " * 400]


def same_predictions(first, second) -> bool:
    """Identical results from two model directories (whose names, and so `model_version`s, differ)."""
    def content(result) -> dict:
        data = result.to_dict()
        del data["model_version"]
        return data

    return [content(r) for r in first] == [content(r) for r in second]


def test_round_trip_gives_identical_predictions(tiny_model, tmp_path):
    first = load_predictor(tiny_model, "cpu").predict(PROBES)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    second = load_predictor(copy, "cpu").predict(PROBES)
    assert same_predictions(first, second)
    # A byte-identical copy is the same version's content: only the directory name differs.
    assert first[0].model_version.rpartition("-")[2] == second[0].model_version.rpartition("-")[2]


def test_directory_is_readable_by_standard_tools(tiny_model):
    encoder = AutoModel.from_pretrained(str(tiny_model))
    assert encoder.config.hidden_size == 384
    labels = json.loads((tiny_model / "labels.json").read_text())
    assert set(labels["intents"]) == {"greet", "oos", "order_status", "refund"}
    assert labels["sentiments"] == ["negative", "neutral", "positive"]
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    assert {"intent", "sentiment"} <= set(metrics["dev"])
    for plot in metrics["plots"]:
        assert (tiny_model / plot).stat().st_size > 1000
    config = json.loads((tiny_model / "training_config.json").read_text())
    assert config["seed"] == 3


def test_batched_and_unbatched_results_agree(tiny_model):
    predictor = load_predictor(tiny_model, "cpu")
    batched = predictor.predict(PROBES)
    single = [predictor.predict([text])[0] for text in PROBES]
    for a, b in zip(batched, single, strict=True):
        assert a.intent == b.intent and a.sentiment == b.sentiment and a.out_of_scope == b.out_of_scope
        assert a.confidence == pytest.approx(b.confidence, abs=2e-3)
        for k, v in a.sentiment_scores.items():
            assert v == pytest.approx(b.sentiment_scores[k], abs=2e-3)


def test_engine_micro_batches_concurrent_callers(tiny_model):
    predictor = load_predictor(tiny_model, "cpu")
    expected = {r.text: r.intent for r in predictor.predict(PROBES)}
    sizes: list[int] = []
    engine = InferenceEngine(predictor, max_batch=64, max_wait_ms=20, on_batch=lambda n, s: sizes.append(n))
    try:
        results: dict[int, str] = {}
        barrier = threading.Barrier(len(PROBES))

        def call(i: int) -> None:
            barrier.wait()
            results[i] = engine.predict_one(PROBES[i]).intent

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(PROBES))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [results[i] for i in range(len(PROBES))] == [expected[p] for p in PROBES]
        assert sum(sizes) == len(PROBES)
        assert max(sizes) > 1, "concurrent requests should share a forward pass"
    finally:
        engine.close()


def test_out_of_scope_is_learned_and_calibrated(tiny_model):
    predictor = load_predictor(tiny_model, "cpu")
    thresholds = predictor.bundle.thresholds
    assert thresholds.method.startswith("dev grid search")
    results = predictor.predict(["what is the capital of france", "where is my order"])
    assert results[0].out_of_scope and results[0].intent == "oos"
    assert not results[1].out_of_scope and results[1].intent == "order_status"
    # The best in-scope guess is still reported for staff, even when out of scope.
    assert results[0].top_intents and results[0].top_intents[0]["intent"] != "oos"


def test_similarity_rule_flags_unfamiliar_text_without_oos_examples(tiny_model):
    predictor = load_predictor(tiny_model, "cpu")
    sims = predictor.bundle.neighbours.similarity(
        predictor.backend.score(["where is my order", "quantum chromodynamics lattice gauge"]).embeddings
    )
    assert sims[0] > sims[1]


@pytest.mark.parametrize("damage", ["missing_dir", "missing_heads", "bad_json", "truncated_weights"])
def test_broken_model_directory_gives_a_clear_error(tiny_model, tmp_path, damage):
    broken = tmp_path / "broken"
    if damage != "missing_dir":
        shutil.copytree(tiny_model, broken)
    if damage == "missing_heads":
        (broken / "heads.safetensors").unlink()
    elif damage == "bad_json":
        (broken / "labels.json").write_text("{not json")
    elif damage == "truncated_weights":
        data = (broken / "model.safetensors").read_bytes()
        (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError) as info:
        load_bundle(broken)
    assert str(broken) in str(info.value)


def test_empty_and_odd_texts_get_results(tiny_model):
    predictor = load_predictor(tiny_model, "cpu")
    results = predictor.predict(["", "   ", "\x00\x01", "مرحبا", "e\u0301" * 50])
    assert len(results) == 5
    for r in results:
        assert np.isfinite(r.confidence)
        assert abs(sum(r.sentiment_scores.values()) - 1) < 1e-3


@pytest.mark.slow
def test_training_is_deterministic_with_a_seed(tiny_data, tmp_path):
    from nlu.data import read_labelled_csv
    from nlu.fit import fit
    from nlu.train import TrainConfig

    intents = read_labelled_csv(tiny_data[0], "intent")
    sentiments = read_labelled_csv(tiny_data[1], "sentiment")
    config = TrainConfig(epochs=1, batch_size=8, max_steps=3, dev_fraction=0.2, device="cpu", seed=11,
                         augment=True)
    outputs = [fit(intents, sentiments, tmp_path / f"run{i}", config).out_dir for i in range(2)]
    first, second = (load_predictor(o, "cpu").predict(PROBES) for o in outputs)
    assert same_predictions(first, second)
