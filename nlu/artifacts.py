"""Saving and loading a trained model as a Hugging Face-style directory.

Layout (every file readable by standard tools):

    config.json, model.safetensors      the fine-tuned encoder (`AutoModel.from_pretrained`)
    tokenizer.json, vocab.txt, ...      its tokenizer (`AutoTokenizer.from_pretrained`)
    modules.json, 1_Pooling/            so `SentenceTransformer(dir)` loads the encoder too
    heads.safetensors                   intent and sentiment heads
    labels.json                         label maps
    thresholds.json                     out-of-scope rule, calibrated on dev
    neighbours.safetensors              in-scope training embeddings for similarity
    training_config.json                everything needed to reproduce the run
    metrics.json, plots/                dev-set evaluation
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from nlu.ood import NeighbourBank, OodThresholds

if TYPE_CHECKING:
    from nlu.model import JointClassifier

FORMAT_VERSION = 1
REQUIRED_FILES = ("config.json", "model.safetensors", "heads.safetensors", "labels.json")


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete or corrupt; the message says which."""


@dataclass
class ModelBundle:
    """Everything inference needs, loaded once."""

    model: JointClassifier | None  # None when loaded without its weights (served by its ONNX graph instead)
    tokenizer: PreTrainedTokenizerBase
    intent_labels: list[str]
    sentiment_labels: list[str]
    thresholds: OodThresholds
    neighbours: NeighbourBank
    max_length: int
    training_config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_bundle(bundle: ModelBundle, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bundle.model.encoder.save_pretrained(out, safe_serialization=True)
    bundle.tokenizer.save_pretrained(out)
    save_torch(bundle.model.head_state_dict(), str(out / "heads.safetensors"))
    save_numpy(
        {"vectors": bundle.neighbours.vectors.astype(np.float16), "labels": bundle.neighbours.labels},
        str(out / "neighbours.safetensors"),
    )
    _write_json(
        out / "labels.json",
        {
            "format_version": FORMAT_VERSION,
            "intents": bundle.intent_labels,
            "sentiments": bundle.sentiment_labels,
            "head": bundle.model.head_kind,
            "pooling": "mean",
            "max_length": bundle.max_length,
        },
    )
    _write_json(out / "thresholds.json", bundle.thresholds.to_dict())
    _write_json(out / "training_config.json", bundle.training_config)
    # sentence-transformers metadata: the encoder alone is a usable sentence embedder.
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": bundle.max_length, "do_lower_case": False})
    (out / "1_Pooling").mkdir(exist_ok=True)
    _write_json(
        out / "1_Pooling" / "config.json",
        {"word_embedding_dimension": int(bundle.model.encoder.config.hidden_size), "pooling_mode_mean_tokens": True},
    )
    bundle.path = out
    return out


def load_bundle(model_dir: str | Path, device: str | torch.device = "cpu", *, weights: bool = True) -> ModelBundle:
    """Load a saved model; raise `ModelLoadError` naming the file that is wrong instead of a stack trace.

    `weights=False`: everything but the PyTorch model (`model` is None), for a directory served by its ONNX graph:
    neither the weights nor transformers' modelling code (with SciPy, which it imports) are then in memory.
    """
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelLoadError(f"model directory {path} does not exist (train one with `frontdesk train`)")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelLoadError(f"model directory {path} is incomplete: missing {', '.join(missing)}")
    meta = _read_json(path / "labels.json")
    with _reading(path / "labels.json"):
        if not (isinstance(meta["intents"], list) and isinstance(meta["sentiments"], list)):
            raise ValueError("intents and sentiments must be lists of labels")
        intents, sentiments = list(meta["intents"]), list(meta["sentiments"])
        max_length = int(meta.get("max_length", 64))
    thresholds = OodThresholds()
    if (path / "thresholds.json").is_file():
        with _reading(path / "thresholds.json"):
            thresholds = OodThresholds.from_dict(_read_json(path / "thresholds.json"))
    config_path = path / "training_config.json"
    training_config = _read_json(config_path) if config_path.is_file() else {}
    model = _load_model(path, meta, len(intents), len(sentiments), training_config) if weights else None
    tokenizer = _load_tokenizer(path)
    neighbours_path = path / "neighbours.safetensors"
    with _reading(neighbours_path):
        bank = load_numpy(str(neighbours_path)) if neighbours_path.is_file() else {}
        hidden = model.encoder.config.hidden_size if model is not None else _hidden_size(path)
        vectors = bank.get("vectors", np.zeros((0, hidden), np.float16))
        neighbours = NeighbourBank(vectors.astype(np.float32), bank.get("labels"))
    if model is not None:
        model.to(device)
        model.eval()
    return ModelBundle(model=model, tokenizer=tokenizer, intent_labels=intents, sentiment_labels=sentiments,
                       thresholds=thresholds, neighbours=neighbours, max_length=max_length,
                       training_config=training_config, path=path)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt")


@contextmanager
def _reading(what: Path | str) -> Iterator[None]:
    """Any failure inside (safetensors, tokenizers, JSON and torch each raise their own types) becomes a
    `ModelLoadError` naming `what`: the file an operator has to replace."""
    try:
        yield
    except ModelLoadError:
        raise
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelLoadError(f"{what} is corrupt: {type(exc).__name__}: {detail}") from exc


def _read_json(path: Path) -> Any:
    with _reading(path):
        return json.loads(path.read_text(encoding="utf-8"))


def _hidden_size(path: Path) -> int:
    with _reading(path / "config.json"):
        return int(_read_json(path / "config.json")["hidden_size"])


def _load_model(path: Path, meta: dict, intents: int, sentiments: int, training_config: dict) -> JointClassifier:
    from nlu.model import JointClassifier  # here: a bundle loaded without weights needs no modelling code

    with _reading(path / "config.json"):
        model = JointClassifier.from_config(str(path), intents, sentiments, head=meta.get("head", "cosine"),
                                            scale=float(training_config.get("scale", 20.0)))
    with _reading(path / "model.safetensors"):
        encoder_state = load_torch(str(path / "model.safetensors"))
        missing_keys, unexpected = model.encoder.load_state_dict(encoder_state, strict=False)
    # Position-id buffers are not always saved; anything else missing means a broken file.
    real_missing = [k for k in missing_keys if "position_ids" not in k]
    if real_missing or unexpected:
        raise ModelLoadError(f"{path / 'model.safetensors'} does not match config.json "
                             f"(missing {real_missing[:3]}, unexpected {unexpected[:3]})")
    with _reading(path / "heads.safetensors"):
        model.load_state_dict({**{f"encoder.{k}": v for k, v in model.encoder.state_dict().items()},
                               **load_torch(str(path / "heads.safetensors"))}, strict=True)
    return model


def _load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    present = [path / name for name in TOKENIZER_FILES if (path / name).is_file()]
    for file in present:
        if file.suffix == ".json":
            _read_json(file)  # a file that is not even JSON is named exactly
    names = ", ".join(f.name for f in present) or "no tokenizer files"
    with _reading(f"the tokenizer in {path} ({names})"):
        return AutoTokenizer.from_pretrained(str(path))
