"""Scoring through onnxruntime: the CPU serving path for an exported model (see `nlu.export`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from nlu.artifacts import ModelBundle, ModelLoadError
from nlu.predictor import Outputs, RawScores, score_by_length

ONNX_FILE = "model.onnx"  # the graph in a model directory: `nlu.export` writes it, the engine serves it

# Texts per pass. A pass costs in proportion to its padded tokens: of 32 random BANKING77 sentences sorted
# by length, passes of 8 compute 28 % padding and passes of 4 14 %, and passes of 3-4 scored the most
# texts per CPU-second (passes of 1-2 pay onnxruntime's fixed cost per run instead). Measured on 2 cores:
# python -m bench.serve, onnx part, and docs/BENCHMARKS.md.
PASS_TEXTS = 4


_configured_lanes = 0  # set by the wiring layer from FRONTDESK_ONNX_THREADS (`use_lanes`); 0: one per core


def use_lanes(lanes: int) -> None:
    """Run this many passes side by side in every ONNX backend made from now on (0: one per core)."""
    global _configured_lanes
    _configured_lanes = max(0, int(lanes))


def default_lanes() -> int:
    """The lanes chosen with `use_lanes`, else the cores this process may run on."""
    return _configured_lanes if _configured_lanes > 0 else len(os.sched_getaffinity(0))


class OnnxBackend:
    """Same contract as `TorchBackend.score`, on an ONNX graph: a batch sorted by length, run in passes of
    `PASS_TEXTS` texts, the passes side by side on `lanes` threads, each pass on one core.

    Why not onnxruntime's own threads: splitting one small pass's matrix products over two cores costs
    more in hand-offs than it gains, and one core of two sat idle between them; two single-threaded
    passes at once keep both busy with no hand-off (onnxruntime's `run` is thread-safe and releases
    the GIL). Measured at 64 clients on 2 cores: python -m bench.serve and docs/BENCHMARKS.md.
    """

    def __init__(self, bundle: ModelBundle, onnx_path: str | Path, max_batch: int = 64, threads: int | None = None):
        self.session = open_session(onnx_path)
        self.bundle = bundle
        self.lanes = threads or default_lanes()
        # Idle lanes cost nothing; they go with the backend (a swapped-out model's pool is collected with it).
        self._pool = lane_pool(self.lanes)
        self.sub_batch = min(max_batch, PASS_TEXTS)
        self.pad_id = bundle.tokenizer.pad_token_id or 0
        self.token_ids = token_ids(bundle.tokenizer, bundle.max_length)

    def score(self, texts: Sequence[str]) -> RawScores:
        return score_by_length(self.token_ids(texts), self.sub_batch, self._run,
                               self._pool.map if self._pool else map)

    def _run(self, chunk: list[Sequence[int]]) -> Outputs:
        intent, sentiment, embeddings = self.session.run(None, padded_feeds(chunk, self.pad_id))
        return intent.astype(np.float32), sentiment.astype(np.float32), embeddings.astype(np.float32)


def token_ids(tokenizer, max_length: int) -> Callable[[Sequence[str]], list[list[int]]]:
    """Texts -> token ids, truncated to `max_length`, as `tokenizer(texts, truncation=True)` gives them, through
    its Rust tokenizer where it has one: the Python wrapper around it cost 0.55 ms a text against 0.04 ms
    (measured on one-text calls, the serving path's usual size), more than a tenth of an intent pass."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow (Python) tokenizer: only its own call knows how
        return lambda texts: tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    from tokenizers import Tokenizer

    rust = Tokenizer.from_str(backend.to_str())  # a copy: the bundle's tokenizer keeps its own settings
    rust.no_padding()
    rust.enable_truncation(max_length)
    return lambda texts: [encoding.ids for encoding in rust.encode_batch(list(texts))]


def open_session(onnx_path: str | Path):
    """An onnxruntime session on one core per pass (see `OnnxBackend`); `ModelLoadError` naming the file when
    it cannot load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own types (InvalidProtobuf, Fail, ...): the file is the problem
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelLoadError(f"{onnx_path} is corrupt or not an ONNX graph: {type(exc).__name__}: {detail}") from exc


def lane_pool(lanes: int) -> ThreadPoolExecutor | None:
    """Threads to run `lanes` passes side by side; None for one lane (passes run in the caller's thread)."""
    return ThreadPoolExecutor(lanes, thread_name_prefix="onnx-pass") if lanes > 1 else None


def padded_feeds(chunk: Sequence[Sequence[int]], pad_id: int) -> dict[str, np.ndarray]:
    """`input_ids` and `attention_mask` for token lists padded to the longest of them."""
    width = max(len(ids) for ids in chunk)
    ids = np.full((len(chunk), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(chunk), width), dtype=np.int64)
    for row, tokens in enumerate(chunk):
        ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    return {"input_ids": ids, "attention_mask": mask}
