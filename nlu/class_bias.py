"""Per-class decision offsets for an imbalanced classifier, calibrated for macro-F1 on dev.

A head trained with cross-entropy on imbalanced data (customer sentiment is mostly negative)
predicts the majority class whenever it is unsure, which is right for accuracy and wrong for
macro-F1: the rare classes lose recall. Adding a log-offset per class before the argmax moves
those boundaries; we pick the offsets on the dev split by coordinate ascent over a small grid and
keep them only when the dev split is large enough to trust and they actually help there.
"""

from __future__ import annotations

import numpy as np

GRID = np.round(np.arange(-1.5, 1.51, 0.1), 2)
MIN_DEV_ROWS = 150  # below this, offsets fitted on dev mostly fit its noise
MIN_GAIN = 0.005  # macro-F1 on dev an offset set must add to be kept (half a point: less is noise)


def apply_bias(probs: np.ndarray, bias: list[float] | None) -> np.ndarray:
    """Probabilities re-weighted by exp(offset) per class and renormalised (unchanged without offsets)."""
    if not bias:
        return probs
    weighted = probs * np.exp(np.asarray(bias, dtype=probs.dtype))
    return weighted / np.clip(weighted.sum(axis=1, keepdims=True), 1e-12, None)


def _macro_f1(probs: np.ndarray, gold: np.ndarray, bias: np.ndarray) -> float:
    # Imported here: serving needs only `apply_bias`, and scikit-learn with SciPy is ~70 MB of every worker.
    from sklearn.metrics import f1_score

    predicted = (np.log(np.clip(probs, 1e-12, None)) + bias).argmax(axis=1)
    return float(f1_score(gold, predicted, labels=np.arange(probs.shape[1]), average="macro", zero_division=0))


def calibrate_bias(probs: np.ndarray, gold: np.ndarray, sweeps: int = 3) -> list[float]:
    """Offsets (one per class, the first fixed at 0) that maximise dev macro-F1; [] when not worth it."""
    n_classes = probs.shape[1]
    if len(gold) < MIN_DEV_ROWS or n_classes < 2 or len(np.unique(gold)) < 2:
        return []
    bias = np.zeros(n_classes)
    start = best = _macro_f1(probs, gold, bias)
    for _ in range(sweeps):
        improved = False
        for c in range(1, n_classes):
            for value in GRID:
                trial = bias.copy()
                trial[c] = value
                score = _macro_f1(probs, gold, trial)
                # Ties go to the smaller offset: the least change that reaches the score.
                if score > best + 1e-9 or (abs(score - best) <= 1e-9 and abs(value) < abs(bias[c])):
                    improved |= score > best + 1e-9
                    best, bias = max(best, score), trial
        if not improved:
            break
    return [float(b) for b in bias] if best - start >= MIN_GAIN else []
