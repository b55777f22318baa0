"""Turning texts into NLU results: one encoder pass, both heads, the out-of-scope rule.

`Predictor` is synchronous and stateless between calls; `nlu.engine.InferenceEngine`
puts micro-batching in front of it for concurrent callers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from nlu.artifacts import ModelBundle
from nlu.class_bias import apply_bias
from nlu.data import OOS_LABEL
from nlu.ood import Nearest, is_out_of_scope

TOP_K = 3


@dataclass
class NluResult:
    """What the NLU says about one message."""

    text: str
    intent: str  # the predicted intent, or "oos" when out of scope
    confidence: float  # probability of the best in-scope intent
    out_of_scope: bool
    sentiment: str
    sentiment_scores: dict[str, float]
    top_intents: list[dict[str, float | str]] = field(default_factory=list)
    similarity: float = 0.0  # to the nearest training examples; low means unfamiliar
    model_version: str = ""  # the model that decided it (`nlu.versions.model_version`)

    def to_dict(self) -> dict:
        # Plain values all the way down: a shallow copy per level does what `dataclasses.asdict` does without
        # its recursive deep copy, which showed up in the /predict profile.
        return {**self.__dict__, "sentiment_scores": dict(self.sentiment_scores),
                "top_intents": [dict(t) for t in self.top_intents]}


@dataclass
class RawScores:
    """Backend output for a batch, in input order."""

    intent_probs: np.ndarray
    sentiment_probs: np.ndarray
    embeddings: np.ndarray


# Texts per forward pass on a CPU. Attention and padding grow with the longest text of a pass, so
# a CPU does better on several small passes of similar length than on one wide one: on 2 cores, 32
# BANKING77 sentences score ~2x faster as four length-sorted passes of 8 than as one of 32. A GPU
# wants the opposite (one wide pass), so CUDA keeps the engine's whole batch.
CPU_SUB_BATCH = 8

Outputs = tuple[np.ndarray, np.ndarray, np.ndarray]  # intent probs, sentiment probs, embeddings


def sub_batch_size(device: str, max_batch: int) -> int:
    return max_batch if device.startswith("cuda") else min(max_batch, CPU_SUB_BATCH)


def run_by_length(encoded: Sequence[Sequence[int]], size: int,
                  run: Callable[[list[Sequence[int]]], tuple[np.ndarray, ...]], mapper=map) -> list[np.ndarray]:
    """Run `run` on length-sorted groups of at most `size` token lists; each of its outputs in input order.
    `mapper`: how the groups are run (`map` one after the other; a thread pool's `map` side by side)."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    parts: list[list[np.ndarray]] = []
    chunks = [[encoded[i] for i in order[start : start + size]] for start in range(0, len(order), size)]
    # One pass has nothing to run beside it: run it here rather than hand it to another thread and wait.
    for outputs in (mapper if len(chunks) > 1 else map)(run, chunks):
        parts = parts or [[] for _ in outputs]
        for store, value in zip(parts, outputs, strict=True):
            store.append(value)
    inverse = np.argsort(np.asarray(order))
    return [np.concatenate(p)[inverse] for p in parts]


def score_by_length(encoded: Sequence[Sequence[int]], size: int,
                    run: Callable[[list[Sequence[int]]], Outputs], mapper=map) -> RawScores:
    """`run_by_length` for a model's three outputs."""
    intent, sentiment, embeddings = run_by_length(encoded, size, run, mapper)
    return RawScores(intent_probs=intent, sentiment_probs=sentiment, embeddings=embeddings)


class TorchBackend:
    """Runs the PyTorch model; on CUDA in half precision."""

    def __init__(self, bundle: ModelBundle, device: str = "cpu", max_batch: int = 64):
        self.bundle = bundle
        self.device = torch.device(device)
        self.sub_batch = sub_batch_size(str(device), max_batch)
        bundle.model.to(self.device).eval()
        self.autocast = self.device.type == "cuda"

    @torch.inference_mode()
    def score(self, texts: Sequence[str]) -> RawScores:
        encoded = self.bundle.tokenizer(list(texts), truncation=True, max_length=self.bundle.max_length)["input_ids"]
        return score_by_length(encoded, self.sub_batch, self._run)

    def _run(self, chunk: list[Sequence[int]]) -> Outputs:
        batch = self.bundle.tokenizer.pad({"input_ids": chunk}, return_tensors="pt").to(self.device)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.autocast):
            out = self.bundle.model(batch["input_ids"], batch["attention_mask"])
        return (out.intent_logits.float().softmax(-1).cpu().numpy(),
                out.sentiment_logits.float().softmax(-1).cpu().numpy(),
                out.embeddings.float().cpu().numpy())


def mix_neighbour_vote(raw: RawScores, bundle: ModelBundle, weight: float | None = None,
                       nearest: Nearest | None = None) -> np.ndarray:
    """Intent probabilities: the head's, blended with the nearest training examples' vote."""
    weight = bundle.thresholds.knn_weight if weight is None else weight
    if weight <= 0:
        return raw.intent_probs
    nearest = nearest if nearest is not None else bundle.neighbours.nearest(raw.embeddings)
    vote = nearest.vote(raw.intent_probs.shape[1])
    return (1 - weight) * raw.intent_probs + weight * vote


class Predictor:
    """Texts in, `NluResult`s out, through any backend with a `score(texts)` method."""

    def __init__(self, bundle: ModelBundle, backend=None, version: str = ""):
        self.bundle = bundle
        self.backend = backend or TorchBackend(bundle)
        self.version = version  # set by `nlu.engine.load_predictor`; every result carries it
        labels = bundle.intent_labels
        self._oos_index = labels.index(OOS_LABEL) if OOS_LABEL in labels else None
        self._in_scope = np.array([label != OOS_LABEL for label in labels])

    def predict(self, texts: Sequence[str]) -> list[NluResult]:
        if not texts:
            return []
        # An empty message carries no meaning; the tokenizer still needs something to encode.
        clean = [t if t.strip() else " " for t in texts]
        raw = self.backend.score(clean)
        return self.decide(texts, raw)

    def decide(self, texts: Sequence[str], raw: RawScores) -> list[NluResult]:
        labels = self.bundle.intent_labels
        nearest = self.bundle.neighbours.nearest(raw.embeddings)
        probs = mix_neighbour_vote(raw, self.bundle, nearest=nearest)
        in_scope_probs = np.where(self._in_scope, probs, -1.0)
        best = in_scope_probs.argmax(axis=1)
        confidence = in_scope_probs[np.arange(len(best)), best]
        predicted_oos = (
            probs.argmax(axis=1) == self._oos_index
            if self._oos_index is not None
            else np.zeros(len(best), dtype=bool)
        )
        similarity = nearest.similarity()
        flagged = is_out_of_scope(predicted_oos, confidence, similarity, self.bundle.thresholds)
        sentiment_probs = apply_bias(raw.sentiment_probs, self.bundle.thresholds.sentiment_bias)
        results = []
        for i, text in enumerate(texts):
            top = np.argsort(-in_scope_probs[i])[:TOP_K]
            sentiment_scores = {
                name: round(float(p), 4)
                for name, p in zip(self.bundle.sentiment_labels, sentiment_probs[i], strict=True)
            }
            results.append(
                NluResult(
                    text=text,
                    intent=OOS_LABEL if flagged[i] else labels[best[i]],
                    confidence=round(float(confidence[i]), 4),
                    out_of_scope=bool(flagged[i]),
                    sentiment=max(sentiment_scores, key=sentiment_scores.__getitem__),
                    sentiment_scores=sentiment_scores,
                    top_intents=[
                        {"intent": labels[j], "confidence": round(float(probs[i, j]), 4)}
                        for j in top
                        if self._in_scope[j]
                    ],
                    similarity=round(float(similarity[i]), 4),
                    model_version=self.version,
                )
            )
        return results
