"""Out-of-scope detection: when the model should say "I don't know" instead of guessing.

Two signals, both cheap at inference time:

* the classifier's top probability (low when the head hesitates between intents), and
* the cosine similarity to the nearest in-scope training utterances in the fine-tuned
  embedding space (low when the message is unlike anything the model was taught,
  even if the head happens to be confident; softmax is famously over-confident far from
  the data).

A message is out of scope when the head predicts the `oos` class, or either signal falls
below its threshold. Thresholds are calibrated on the dev split: with `oos` examples we
pick the pair that best balances in-scope accuracy and out-of-scope recall; without them
we accept a small, fixed false-rejection rate on in-scope dev messages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

NEIGHBOURS = 5  # similarity is the mean over the k nearest in-scope training examples


@dataclass
class OodThresholds:
    min_confidence: float = 0.0
    min_similarity: float = -1.0
    method: str = "uncalibrated"
    knn_weight: float = 0.0  # share of the nearest-neighbour vote in the intent probabilities
    sentiment_bias: list[float] = field(default_factory=list)  # per-class log-offsets (nlu.class_bias)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> OodThresholds:
        return cls(
            min_confidence=float(data.get("min_confidence", 0.0)),
            min_similarity=float(data.get("min_similarity", -1.0)),
            method=str(data.get("method", "uncalibrated")),
            knn_weight=float(data.get("knn_weight", 0.0)),
            sentiment_bias=[float(b) for b in data.get("sentiment_bias") or []],
        )


VOTE_NEIGHBOURS = 10  # the neighbour vote blended into the intent head looks this far


@dataclass
class Nearest:
    """The k most similar bank vectors of each query, most similar first: one search serves both signals."""

    sims: np.ndarray  # (queries, k) cosine similarities, descending
    labels: np.ndarray  # (queries, k) intent index of each neighbour, -1 when unknown

    def similarity(self, k: int = NEIGHBOURS) -> np.ndarray:
        """Mean cosine similarity to the k nearest: low means unlike anything the model was taught.

        With an empty bank there is nothing to be unlike, so every query counts as familiar (1.0)."""
        if self.sims.shape[1] == 0:
            return np.ones(len(self.sims), dtype=np.float32)
        return self.sims[:, :k].mean(axis=1)

    def vote(self, n_classes: int, k: int = VOTE_NEIGHBOURS, temperature: float = 0.05) -> np.ndarray:
        """Class probabilities from a similarity-weighted vote of the k nearest neighbours."""
        probs = np.zeros((len(self.sims), n_classes), dtype=np.float32)
        sims, labels = self.sims[:, :k], self.labels[:, :k]
        if sims.size == 0 or (labels < 0).all():
            return probs
        weights = np.exp((sims - sims[:, :1]) / temperature)
        rows = np.repeat(np.arange(len(sims)), sims.shape[1])
        known = labels.ravel() >= 0
        np.add.at(probs, (rows[known], labels.ravel()[known]), weights.ravel()[known])
        return probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)


class NeighbourBank:
    """Normalised embeddings of the in-scope training examples and their intent indices."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray | None = None):
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = vectors / np.clip(norms, 1e-12, None)
        self.labels = (np.asarray(labels, dtype=np.int64) if labels is not None
                       else np.full(len(vectors), -1, dtype=np.int64))
        # torch views of the same memory: its matmul + topk is the cheapest exact search here, and it
        # does not wake a second BLAS thread pool next to the model's (numpy's OpenBLAS did, and the two
        # pools fighting over the cores cost more than the search itself).
        self._vectors_t = torch.from_numpy(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)

    @torch.inference_mode()
    def nearest(self, embeddings: np.ndarray, k: int = max(NEIGHBOURS, VOTE_NEIGHBOURS)) -> Nearest:
        """Exact cosine search of the bank, k neighbours per query (fewer when the bank is smaller)."""
        queries = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        k = min(k, len(self.vectors))
        if k == 0:
            empty = np.zeros((len(queries), 0))
            return Nearest(empty.astype(np.float32), empty.astype(np.int64))
        sims, idx = torch.topk(torch.nn.functional.normalize(queries, dim=1) @ self._vectors_t.T, k, dim=1)
        idx_np = idx.numpy()
        return Nearest(sims.numpy(), self.labels[idx_np])

    def similarity(self, embeddings: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
        """Mean cosine similarity of each embedding to its k nearest bank vectors."""
        return self.nearest(embeddings, k).similarity(k)


def is_out_of_scope(
    predicted_oos: np.ndarray, confidence: np.ndarray, similarity: np.ndarray, thresholds: OodThresholds
) -> np.ndarray:
    return predicted_oos | (confidence < thresholds.min_confidence) | (similarity < thresholds.min_similarity)


def _candidates(values: np.ndarray, floor: float) -> np.ndarray:
    quantiles = np.quantile(values, np.linspace(0.0, 0.5, 51)) if len(values) else np.array([])
    return np.unique(np.concatenate([[floor], quantiles]))


def calibrate(
    *,
    confidence: np.ndarray,
    similarity: np.ndarray,
    predicted_oos: np.ndarray,
    correct: np.ndarray,
    gold_oos: np.ndarray,
    false_reject_rate: float = 0.02,
) -> OodThresholds:
    """Choose thresholds on dev predictions.

    `correct` marks in-scope dev rows whose intent was predicted right; `gold_oos` marks
    dev rows labelled out-of-scope.
    """
    in_scope = ~gold_oos
    if gold_oos.sum() == 0:
        # No negatives to learn from: accept `false_reject_rate` of correct in-scope answers.
        reference = in_scope & correct & ~predicted_oos
        if reference.sum() == 0:
            return OodThresholds(method="no-dev-data")
        q = false_reject_rate / 2  # split the budget between the two signals
        return OodThresholds(
            min_confidence=float(np.quantile(confidence[reference], q)),
            min_similarity=float(np.quantile(similarity[reference], q)),
            method=f"in-scope quantile (false-reject budget {false_reject_rate:.1%})",
        )

    best: tuple[float, float, float] | None = None
    for t_conf in _candidates(confidence[in_scope], 0.0):
        for t_sim in _candidates(similarity[in_scope], -1.0):
            flagged = predicted_oos | (confidence < t_conf) | (similarity < t_sim)
            in_scope_acc = float((correct & ~flagged)[in_scope].mean()) if in_scope.any() else 0.0
            oos_recall = float(flagged[gold_oos].mean())
            # Weight in-scope accuracy higher: a wrongly refused customer costs more than
            # an out-of-scope message that gets a wrong guess and a fallback offer later.
            score = 2.0 * in_scope_acc + oos_recall
            if best is None or score > best[0] + 1e-12:
                best = (score, float(t_conf), float(t_sim))
    assert best is not None
    return OodThresholds(
        min_confidence=best[1], min_similarity=best[2], method="dev grid search with oos examples"
    )
