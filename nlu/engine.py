"""The inference engine: one loaded model shared by every caller, with dynamic micro-batching.

Concurrent callers (HTTP requests, chat workers, the CLI) submit texts; a single worker
thread takes whatever is waiting, up to `max_batch` texts, waiting at most `max_wait_ms`
for company once the first request arrives, and runs them through the model in one
batch. Under load this turns many one-sentence forward passes into a few large ones,
which is where a CPU (and even more a GPU) gets its throughput.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

from nlu.artifacts import ModelLoadError, load_bundle
from nlu.batching import BatcherClosed, BatchObserver, MicroBatcher
from nlu.device import resolve_device
from nlu.ensemble import EnsembleBackend, is_ensemble, member_dirs
from nlu.onnx_backend import ONNX_FILE, OnnxBackend
from nlu.predictor import NluResult, Predictor, TorchBackend
from nlu.version_id import model_version

EngineClosed = BatcherClosed  # the name callers know


class InferenceEngine:
    """Thread-safe, batching front of a `Predictor` (see `nlu.batching`)."""

    def __init__(self, predictor: Predictor, *, max_batch: int = 64, max_wait_ms: float = 2.0,
                 on_batch: BatchObserver | None = None):
        self.predictor = predictor
        self.max_batch = max_batch
        self._batcher = MicroBatcher(self._predict, max_batch=max_batch, max_wait_ms=max_wait_ms,
                                     on_batch=on_batch, name="nlu-engine")

    def _predict(self, texts: list[str]) -> list[NluResult]:
        # One read of the attribute per batch: a batch runs wholly on the old or wholly on the new model.
        return self.predictor.predict(texts)

    @property
    def version(self) -> str:
        return self.predictor.version

    def swap(self, predictor: Predictor) -> Predictor:
        """Serve `predictor` from the next batch on; returns the one it replaces.

        The new model is loaded (and probed) beside the old one before this call, so the switch
        is one attribute assignment, atomic under the GIL: a batch already running finishes on
        the old model, the next one starts on the new; no request fails or waits for a load.
        The old model's memory is freed once the caller drops the returned predictor.
        """
        old, self.predictor = self.predictor, predictor
        return old

    @property
    def labels(self) -> list[str]:
        return self.predictor.bundle.intent_labels

    def submit(self, texts: Sequence[str]) -> Future:
        """Queue texts for prediction; the future resolves to one `NluResult` per text."""
        return self._batcher.submit(texts)

    def predict(self, texts: Sequence[str], timeout: float | None = 60.0) -> list[NluResult]:
        return self.submit(texts).result(timeout=timeout)

    def predict_one(self, text: str, timeout: float | None = 60.0) -> NluResult:
        return self.predict([text], timeout=timeout)[0]

    async def apredict(self, texts: Sequence[str]) -> list[NluResult]:
        return await asyncio.wrap_future(self.submit(texts))

    def close(self) -> None:
        self._batcher.close()


def load_predictor(model_dir: str | Path, device: str = "auto", max_batch: int = 64,
                   backend: str = "auto") -> Predictor:
    """The model directory loaded for prediction, its results stamped with its version (`nlu.version_id`)."""
    predictor = _load_predictor(model_dir, device, max_batch, backend)
    predictor.version = model_version(model_dir)
    return predictor


def _load_predictor(model_dir: str | Path, device: str, max_batch: int, backend: str) -> Predictor:
    """Load a model directory once and wrap it for prediction on the chosen device.

    `backend`: "torch", "onnx", or "auto" = onnxruntime when the directory holds an ONNX
    export (`frontdesk export`) and the device is the CPU, PyTorch otherwise (CUDA included).
    """
    if backend not in ("auto", "torch", "onnx"):
        raise ValueError(f"backend must be auto, torch or onnx (got {backend!r})")
    resolved = str(resolve_device(device))
    if is_ensemble(model_dir):
        members = [_load_predictor(m, device, max_batch, backend) for m in member_dirs(model_dir)]
        labels = {(tuple(m.bundle.intent_labels), tuple(m.bundle.sentiment_labels)) for m in members}
        if len(labels) != 1:
            raise ModelLoadError(f"ensemble {model_dir}: members have different labels")
        return Predictor(members[0].bundle, backend=EnsembleBackend([m.backend for m in members]))
    onnx_path = Path(model_dir) / ONNX_FILE
    if backend == "onnx" and not onnx_path.is_file():
        raise ModelLoadError(f"{onnx_path} does not exist: run `frontdesk export` first")
    if backend == "onnx" or (backend == "auto" and resolved == "cpu" and onnx_path.is_file()):
        bundle = load_bundle(model_dir, resolved, weights=False)  # the graph holds the weights it serves
        return Predictor(bundle, backend=OnnxBackend(bundle, onnx_path, max_batch=max_batch))
    bundle = load_bundle(model_dir, resolved)
    return Predictor(bundle, backend=TorchBackend(bundle, resolved, max_batch=max_batch))


def load_engine(
    model_dir: str | Path, device: str = "auto", *, max_batch: int = 64, max_wait_ms: float = 2.0,
    on_batch: BatchObserver | None = None, backend: str = "auto",
) -> InferenceEngine:
    return InferenceEngine(
        load_predictor(model_dir, device, max_batch, backend), max_batch=max_batch, max_wait_ms=max_wait_ms,
        on_batch=on_batch,
    )
