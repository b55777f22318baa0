"""`frontdesk distill`: a student that loads, predicts, exports and deploys like any model; and clear refusals."""

from __future__ import annotations

import json
import shutil

import httpx
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import INTENT_ROWS, write_csv

pytestmark = pytest.mark.slow

TOKEN = "distill-admin-token-0123456789abcdef"
TEXTS = [text for texts in INTENT_ROWS.values() for text in texts]


def cli(*args: str):
    from adapters.cli.main import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def teacher(tiny_data, tmp_path_factory):
    """A teacher trained through `frontdesk train`, which records the data files it read."""
    intents, sentiment = tiny_data
    out = tmp_path_factory.mktemp("teacher") / "teacher"
    result = cli("train", "--intents", str(intents), "--sentiment", str(sentiment), "--out", str(out),
                 "--epochs", "3", "--batch-size", "8", "--max-steps", "9", "--dev-fraction", "0.2",
                 "--device", "cpu", "--seed", "3")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def student(teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "student-2"
    # No --intents/--sentiment: the files the teacher was trained on, as its metrics.json records them.
    result = cli("distill", "--teacher", str(teacher), "--out", str(out), "--layers", "2", "--epochs", "3",
                 "--max-steps", "24", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["out"] == str(out) and summary["layers"] == 2 and "intent" in summary["dev"]
    return out


def _outputs(bundle, texts):
    from nlu.train import encode_all

    ids = bundle.tokenizer(texts, truncation=True, max_length=bundle.max_length)["input_ids"]
    return encode_all(bundle.model, bundle.tokenizer, ids, bundle.model.encoder.device)


def test_student_is_a_smaller_model_directory_that_answers_like_its_teacher(teacher, student):
    from nlu.artifacts import load_bundle
    from nlu.distill import make_student
    from nlu.engine import load_predictor

    big, small = load_bundle(teacher), load_bundle(student)
    assert small.model.encoder.config.num_hidden_layers == 2 < big.model.encoder.config.num_hidden_layers
    assert (small.intent_labels, small.sentiment_labels) == (big.intent_labels, big.sentiment_labels)
    assert (student / "thresholds.json").is_file() and (student / "neighbours.safetensors").is_file()
    config = json.loads((student / "training_config.json").read_text())
    assert config["distilled_from"]["teacher"] == str(teacher.resolve())
    assert config["distilled_from"]["layers_kept"] == [0, 5]
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["data"]["intent"]["path"] == json.loads((teacher / "metrics.json").read_text())[
        "data"]["intent"]["path"]  # a student can itself be distilled again
    assert sum(f.stat().st_size for f in student.glob("*.safetensors")) < sum(
        f.stat().st_size for f in teacher.glob("*.safetensors"))

    # Distillation moved the student towards the teacher: closer than the same layers copied untrained.
    untrained, _ = make_student(big.model, 2)
    t_intent, _, t_emb = _outputs(big, TEXTS)
    s_intent, _, s_emb = _outputs(small, TEXTS)
    big.model = untrained
    u_intent, _, u_emb = _outputs(big, TEXTS)

    def cosine(a, b):
        return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))

    assert cosine(s_emb, t_emb) > cosine(u_emb, t_emb)
    assert np.mean(s_intent.argmax(1) == t_intent.argmax(1)) >= np.mean(u_intent.argmax(1) == t_intent.argmax(1))

    results = load_predictor(student, "cpu").predict(["where is my order", "hello"])
    assert all(r.intent in [*small.intent_labels, "oos"] for r in results)
    assert all(r.sentiment in small.sentiment_labels for r in results)


def test_student_exports_to_int8_and_deploys_like_any_model(teacher, student, redis_url, redis_prefix, tmp_path):
    from adapters.runtime.settings import Settings
    from nlu.engine import load_predictor
    from nlu.onnx_backend import OnnxBackend
    from nlu.versions import model_version
    from tests.support.liveserver import live_app

    int8 = tmp_path / "student-int8"
    result = cli("export", "--model", str(student), "--out", str(int8), "--quantize", "int8")
    assert result.exit_code == 0, result.output
    onnx = load_predictor(int8, "cpu")
    assert isinstance(onnx.backend, OnnxBackend)
    torch_results = load_predictor(student, "cpu").predict(TEXTS)
    onnx_results = onnx.predict(TEXTS)
    agree = np.mean([a.top_intents[0]["intent"] == b.top_intents[0]["intent"]
                     for a, b in zip(torch_results, onnx_results, strict=True)])
    assert agree >= 0.8

    kb = tmp_path / "faq.yaml"
    kb.write_text(yaml.safe_dump([{"id": "hours", "question": "When are you open?", "answer": "9 to 5."}]))
    settings = Settings(FRONTDESK_MODEL_DIR=teacher, FRONTDESK_KB=kb, REDIS_URL=redis_url,
                        FRONTDESK_REDIS_PREFIX=redis_prefix, FRONTDESK_ADMIN_TOKEN=TOKEN,
                        FRONTDESK_HOME=tmp_path / "home", FRONTDESK_DEVICE="cpu", FRONTDESK_IP_RATE_LIMIT="0/60")
    with live_app(settings) as url:
        deployed = httpx.post(f"{url}/admin/model/deploy", json={"path": str(int8)},
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        assert deployed.status_code == 200, deployed.text
        assert deployed.json()["version"] == model_version(int8)
        answer = httpx.post(f"{url}/predict", json={"text": "where is my order"}, timeout=60).json()["results"][0]
        assert answer["model_version"] == model_version(int8)
        assert answer["intent"] in [*json.loads((student / "labels.json").read_text())["intents"], "oos"]


def test_a_narrower_student_keeps_the_neurons_that_matter_and_serves_like_any_model(teacher, tmp_path):
    """`--ffn-width`: every feed-forward block keeps the hidden neurons its texts use most (`nlu.prune`); the
    student is a standard model of that width: it loads, predicts and exports."""
    import copy

    import torch

    from nlu.artifacts import load_bundle
    from nlu.engine import load_predictor
    from nlu.model import mean_pool
    from nlu.prune import neuron_importance, prune_feed_forward

    big = load_bundle(teacher)
    ids = big.tokenizer(TEXTS, truncation=True, max_length=big.max_length)["input_ids"]
    batch = big.tokenizer.pad({"input_ids": ids}, return_tensors="pt")
    importance = neuron_importance(big.model.encoder, [(batch["input_ids"], batch["attention_mask"])])
    assert len(importance) == 6 and importance[0].shape == (1536,)

    def pooled(encoder) -> torch.Tensor:
        with torch.inference_mode():
            states = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            return mean_pool(states, batch["attention_mask"])

    full = pooled(big.model.encoder)
    kept, dropped = copy.deepcopy(big.model.encoder), copy.deepcopy(big.model.encoder)
    prune_feed_forward(kept, 1024, importance)
    prune_feed_forward(dropped, 1024, [-x for x in importance])  # the least important ones instead
    assert kept.config.intermediate_size == 1024
    assert kept.encoder.layer[0].intermediate.dense.weight.shape == (1024, 384)
    error = {name: float((pooled(encoder) - full).norm(dim=1).mean())
             for name, encoder in (("kept", kept), ("dropped", dropped))}
    assert error["kept"] < error["dropped"] / 2, error

    out = tmp_path / "narrow"
    result = cli("distill", "--teacher", str(teacher), "--out", str(out), "--layers", "2", "--ffn-width", "256",
                 "--epochs", "1", "--max-steps", "6", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["ffn_width"] == 256
    small = load_bundle(out)
    assert small.model.encoder.config.intermediate_size == 256 and small.model.encoder.config.num_hidden_layers == 2
    assert json.loads((out / "training_config.json").read_text())["distilled_from"]["ffn_width"] == 256
    int8 = tmp_path / "narrow-int8"
    assert cli("export", "--model", str(out), "--out", str(int8), "--quantize", "int8").exit_code == 0
    results = load_predictor(int8, "cpu").predict(["where is my order", "hello"])
    assert all(r.intent in [*small.intent_labels, "oos"] and r.sentiment in small.sentiment_labels for r in results)


def test_distill_refuses_what_it_cannot_use_with_a_clear_error(teacher, tiny_model, tmp_path):
    out = str(tmp_path / "out")

    def refused(*args: str) -> str:
        result = cli("distill", "--out", out, "--device", "cpu", "--max-steps", "1", *args)
        assert result.exit_code == 1, result.output
        assert not (tmp_path / "out" / "model.safetensors").exists()
        return result.output

    assert "does not exist" in refused("--teacher", str(tmp_path / "nowhere"))
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text("{}")
    assert "missing model.safetensors" in refused("--teacher", str(half))
    broken = tmp_path / "broken"
    shutil.copytree(teacher, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    assert str(broken) in refused("--teacher", str(broken))
    assert "fewer layers than its teacher's 6" in refused("--teacher", str(teacher), "--layers", "6")
    assert "choose 1 to 1535" in refused("--teacher", str(teacher), "--layers", "6", "--ffn-width", "1536")
    # A teacher built without `frontdesk train` does not say what it learned from.
    assert "--intents" in refused("--teacher", str(tiny_model))
    other = write_csv(tmp_path / "other.csv", "intent", {"cancel": ["cancel it", "stop my order"],
                                                         "greet": ["hello", "hi"]})
    assert "labels the teacher does not know: cancel" in refused("--teacher", str(teacher), "--intents", str(other))
    no_text = tmp_path / "texts.csv"
    no_text.write_text("message\nhello\n")
    assert "no 'text' column" in refused("--teacher", str(teacher), "--texts", str(no_text))
    assert "--out must differ" in cli("distill", "--teacher", str(teacher), "--out", str(teacher)).output


def test_train_can_keep_fewer_layers_of_the_base_model(tiny_data, tmp_path):
    from nlu.artifacts import load_bundle

    intents, sentiment = tiny_data
    out = tmp_path / "small"
    result = cli("train", "--intents", str(intents), "--sentiment", str(sentiment), "--out", str(out),
                 "--layers", "2", "--epochs", "1", "--batch-size", "8", "--max-steps", "2", "--dev-fraction", "0.2",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    bundle = load_bundle(out)
    assert bundle.model.encoder.config.num_hidden_layers == 2 and bundle.training_config["layers"] == 2
    too_many = cli("train", "--intents", str(intents), "--out", str(tmp_path / "no"), "--layers", "7",
                   "--max-steps", "1", "--device", "cpu")
    assert too_many.exit_code == 1 and "cannot keep 7 of 6 transformer layers" in too_many.output
