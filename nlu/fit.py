"""From CSV files to a saved, calibrated, evaluated model directory: what `frontdesk train` runs."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nlu.artifacts import ModelBundle, save_bundle
from nlu.class_bias import calibrate_bias
from nlu.data import OOS_LABEL, Example
from nlu.evaluate import EvalReport, save_plots, score, score_intents
from nlu.ood import Nearest, NeighbourBank, OodThresholds, calibrate
from nlu.predictor import Predictor, RawScores, TorchBackend, mix_neighbour_vote
from nlu.progress import TrainingProgress
from nlu.train import TaskData, TrainConfig, TrainedState, encode_all, train_model


@dataclass
class FitResult:
    out_dir: Path
    metrics: dict
    bundle: ModelBundle


def _dev_raw_scores(state: TrainedState, task: TaskData) -> RawScores:
    intent_logits, sentiment_logits, embeddings = encode_all(state.model, state.tokenizer, task.dev_ids, state.device)
    return RawScores(
        intent_probs=torch.from_numpy(intent_logits).softmax(-1).numpy(),
        sentiment_probs=torch.from_numpy(sentiment_logits).softmax(-1).numpy(),
        embeddings=embeddings,
    )


KNN_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def _calibrate_knn_weight(raw: RawScores, bundle: ModelBundle, gold: np.ndarray, in_scope: np.ndarray,
                          nearest: Nearest) -> float:
    """Pick the neighbour-vote share that maximises dev accuracy on in-scope rows (ties: smaller)."""
    rows = in_scope[gold]
    if not rows.any():
        return 0.0
    best_weight, best_acc = 0.0, -1.0
    for weight in KNN_WEIGHTS:
        probs = np.where(in_scope, mix_neighbour_vote(raw, bundle, weight, nearest), -1.0)
        acc = float((probs.argmax(1) == gold)[rows].mean())
        if acc > best_acc + 1e-9:
            best_weight, best_acc = weight, acc
    return best_weight


def build_bundle(state: TrainedState, config: TrainConfig) -> ModelBundle:
    """Wrap the trained network with its neighbour bank and calibrated out-of-scope rule."""
    intents = state.intents
    in_scope_rows = [i for i, y in enumerate(intents.train_y) if intents.labels[y] != OOS_LABEL]
    _, _, train_embeddings = encode_all(
        state.model, state.tokenizer, [intents.train_ids[i] for i in in_scope_rows], state.device
    )
    bundle = ModelBundle(
        model=state.model,
        tokenizer=state.tokenizer,
        intent_labels=intents.labels,
        sentiment_labels=state.sentiments.labels,
        thresholds=OodThresholds(),
        neighbours=NeighbourBank(train_embeddings, np.asarray([intents.train_y[i] for i in in_scope_rows])),
        max_length=config.max_length,
        training_config={**config.to_dict(), "base_model": config.base_model or "all-MiniLM-L6-v2 (packaged)",
                         "best_epoch": state.best_epoch, "history": state.history,
                         "train_seconds": round(state.seconds, 1)},
    )
    if intents.dev_ids:
        raw = _dev_raw_scores(state, intents)
        in_scope = np.array([label != OOS_LABEL for label in intents.labels])
        gold = np.asarray(intents.dev_y)
        oos_index = intents.labels.index(OOS_LABEL) if OOS_LABEL in intents.labels else -1
        nearest = bundle.neighbours.nearest(raw.embeddings)
        knn_weight = _calibrate_knn_weight(raw, bundle, gold, in_scope, nearest)
        mixed = mix_neighbour_vote(raw, bundle, knn_weight, nearest)
        probs = np.where(in_scope, mixed, -1.0)
        best = probs.argmax(1)
        bundle.thresholds = calibrate(
            confidence=probs[np.arange(len(best)), best],
            similarity=nearest.similarity(),
            predicted_oos=mixed.argmax(1) == oos_index,
            correct=best == gold,
            gold_oos=gold == oos_index,
            false_reject_rate=config.false_reject_rate,
        )
        bundle.thresholds.knn_weight = knn_weight
    if state.sentiments.dev_ids:
        sentiment_probs = _dev_raw_scores(state, state.sentiments).sentiment_probs
        bundle.thresholds.sentiment_bias = calibrate_bias(sentiment_probs, np.asarray(state.sentiments.dev_y))
    return bundle


def dev_reports(bundle: ModelBundle, state: TrainedState) -> list[EvalReport]:
    """Score the calibrated model on both dev splits through the real prediction path."""
    predictor = Predictor(bundle, backend=TorchBackend(bundle, str(state.device)))
    reports = []
    if state.intents.dev_examples:
        examples = state.intents.dev_examples
        results = predictor.predict([e.text for e in examples])
        reports.append(score_intents(examples, results))
    if state.sentiments.dev_examples:
        examples = state.sentiments.dev_examples
        results = predictor.predict([e.text for e in examples])
        reports.append(
            score(examples, [r.sentiment for r in results],
                  [max(r.sentiment_scores.values()) for r in results], "sentiment")
        )
    return reports


def fit(
    intent_examples: Sequence[Example],
    sentiment_examples: Sequence[Example],
    out_dir: str | Path,
    config: TrainConfig,
    *,
    progress: TrainingProgress | None = None,
    data: dict | None = None,
) -> FitResult:
    """Train, calibrate, save and evaluate; `data` (per task, `LoadedData.summary()`) goes into metrics.json."""
    state = train_model(intent_examples, sentiment_examples, config, progress=progress)
    return save_and_evaluate(build_bundle(state, config), state, out_dir, data=data)


def save_and_evaluate(bundle: ModelBundle, state: TrainedState, out_dir: str | Path, *,
                      data: dict | None = None) -> FitResult:
    """Write the calibrated model, score it on both dev splits and write metrics.json and the plots.

    Shared by training and distillation, so a student's directory is made exactly like any model's.
    """
    out = save_bundle(bundle, out_dir)
    reports = dev_reports(bundle, state)
    plots: list[str] = []
    for report in reports:
        plots.extend(str(p.relative_to(out)) for p in save_plots(report, out / "plots", prefix="dev_"))
    metrics = {
        "dev": {r.task: r.summary() for r in reports},
        "thresholds": bundle.thresholds.to_dict(),
        "train_rows": {"intent": len(state.intents.train_ids), "sentiment": len(state.sentiments.train_ids)},
        "dev_rows": {"intent": len(state.intents.dev_ids), "sentiment": len(state.sentiments.dev_ids)},
        "best_epoch": state.best_epoch,
        "train_seconds": round(state.seconds, 1),
        "device": str(state.device),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "plots": plots,
    }
    if data:
        # Rows read, conflicts found and how the stated rule resolved them; and which files, so
        # `frontdesk distill` can find the data again.
        metrics["data"] = data
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return FitResult(out_dir=out, metrics=metrics, bundle=bundle)
