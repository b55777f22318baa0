"""Model ensembling: several fine-tuned models of the same labels, their probabilities averaged.

An ensemble is a directory with `ensemble.json` naming its member model directories
(relative paths resolve against the ensemble directory). Serve it like any model
(`FRONTDESK_MODEL_DIR=the-ensemble`): every text goes through each member and the intent
and sentiment probabilities are averaged. The first member also supplies the embedding,
neighbour bank and out-of-scope thresholds, so the out-of-scope rule stays the one that
member was calibrated with. Each member costs one more forward pass per text; the
benchmark in docs/BENCHMARKS.md weighs that against the accuracy it buys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlu.artifacts import ModelLoadError
from nlu.predictor import RawScores

ENSEMBLE_FILE = "ensemble.json"


def write_ensemble(members: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Write an ensemble directory after checking that the members exist and share their labels."""
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two member models")
    out = Path(out_dir)
    labels = [_labels(Path(m)) for m in members]
    if any(other != labels[0] for other in labels[1:]):
        raise ValueError("ensemble members must have the same intent and sentiment labels, in the same order")
    out.mkdir(parents=True, exist_ok=True)
    (out / ENSEMBLE_FILE).write_text(json.dumps({"members": [str(Path(m).resolve()) for m in members]}, indent=2)
                                     + "\n", encoding="utf-8")
    return out


def member_dirs(ensemble_dir: str | Path) -> list[Path]:
    path = Path(ensemble_dir)
    try:
        members = json.loads((path / ENSEMBLE_FILE).read_text(encoding="utf-8"))["members"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path / ENSEMBLE_FILE} is not a valid ensemble file: {exc}") from None
    return [(path / m).resolve() for m in members]


def is_ensemble(model_dir: str | Path) -> bool:
    return (Path(model_dir) / ENSEMBLE_FILE).is_file()


def _labels(model_dir: Path) -> dict:
    try:
        meta = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
    except OSError:
        raise ValueError(f"{model_dir} is not a model directory (no labels.json)") from None
    return {"intents": meta.get("intents"), "sentiments": meta.get("sentiments")}


class EnsembleBackend:
    """Averages the members' probabilities; the first member's embedding drives the neighbour rules."""

    def __init__(self, backends: Sequence):
        if not backends:
            raise ValueError("an ensemble needs members")
        self.backends = list(backends)

    def score(self, texts: Sequence[str]) -> RawScores:
        outputs = [backend.score(texts) for backend in self.backends]
        return RawScores(
            intent_probs=np.mean([o.intent_probs for o in outputs], axis=0),
            sentiment_probs=np.mean([o.sentiment_probs for o in outputs], axis=0),
            embeddings=outputs[0].embeddings,
        )
