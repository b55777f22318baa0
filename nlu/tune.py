"""Hyperparameter search (Optuna) over the few knobs that matter for fine-tuning.

Each trial trains on the train split and is scored on the dev split (never on a test
set); the best configuration is then trained and saved like `frontdesk train` would.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from nlu.data import Example
from nlu.train import TrainConfig, train_model


def search_space(trial, base: TrainConfig) -> TrainConfig:
    return replace(
        base,
        lr=trial.suggest_float("lr", 2e-5, 2e-4, log=True),
        head_lr=trial.suggest_float("head_lr", 3e-4, 1e-2, log=True),
        batch_size=trial.suggest_categorical("batch_size", [16, 32, 64]),
        label_smoothing=trial.suggest_float("label_smoothing", 0.0, 0.2),
        epochs=trial.suggest_int("epochs", 3, max(3, base.epochs)),
    )


def tune(
    intent_examples: Sequence[Example],
    sentiment_examples: Sequence[Example],
    base: TrainConfig,
    trials: int,
    on_trial=None,
) -> tuple[TrainConfig, list[dict]]:
    """Return the best configuration found and one record per trial."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    records: list[dict] = []

    def objective(trial) -> float:
        config = search_space(trial, base)
        state = train_model(intent_examples, sentiment_examples, config)
        score = max(h["dev_score"] for h in state.history)
        record = {"trial": trial.number, "dev_score": score, **trial.params}
        records.append(record)
        if on_trial:
            on_trial(record)
        return score

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=base.seed))
    study.optimize(objective, n_trials=trials)
    return search_space(optuna.trial.FixedTrial(study.best_params), base), records
