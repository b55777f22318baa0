"""Dev-calibrated class offsets: they must raise macro-F1 where the head under-predicts a rare class,
stay off where dev is too small to trust, and survive a save/load of the decision rule."""

import numpy as np
from sklearn.metrics import f1_score

from nlu.class_bias import MIN_DEV_ROWS, apply_bias, calibrate_bias
from nlu.ood import OodThresholds


def _shy_head(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes (70/20/10 %); the head's probabilities lean towards class 0 whatever the truth."""
    rng = np.random.default_rng(seed)
    gold = rng.choice(3, size=rows, p=[0.7, 0.2, 0.1])
    logits = rng.normal(0, 1.0, size=(rows, 3))
    logits[np.arange(rows), gold] += 1.6
    logits[:, 0] += 1.2
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True), gold


def _macro(probs: np.ndarray, gold: np.ndarray) -> float:
    return f1_score(gold, probs.argmax(1), average="macro")


def test_offsets_fitted_on_dev_raise_macro_f1_on_unseen_rows():
    dev_probs, dev_gold = _shy_head(2000, seed=1)
    test_probs, test_gold = _shy_head(2000, seed=2)
    bias = calibrate_bias(dev_probs, dev_gold)
    assert len(bias) == 3 and bias[0] == 0.0
    assert bias[1] > 0 and bias[2] > 0  # the rare classes get pushed up
    assert _macro(apply_bias(test_probs, bias), test_gold) > _macro(test_probs, test_gold) + 0.02
    adjusted = apply_bias(test_probs, bias)
    assert np.allclose(adjusted.sum(axis=1), 1.0)


def test_small_or_balanced_dev_keeps_plain_argmax():
    probs, gold = _shy_head(MIN_DEV_ROWS - 1, seed=3)
    assert calibrate_bias(probs, gold) == []
    # A head that is already right everywhere has nothing to gain.
    gold = np.random.default_rng(4).choice(3, size=600)
    exact = np.full((600, 3), 0.05)
    exact[np.arange(600), gold] = 0.9
    assert calibrate_bias(exact, gold) == []
    assert apply_bias(exact, []) is exact


def test_offsets_round_trip_through_the_saved_rule():
    rule = OodThresholds(min_confidence=0.3, sentiment_bias=[0.0, 0.4, 0.7])
    assert OodThresholds.from_dict(rule.to_dict()) == rule
    assert OodThresholds.from_dict({}).sentiment_bias == []
