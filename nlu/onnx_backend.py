"""Scoring through onnxruntime: the CPU serving path for an exported model (see `nlu.export`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlu.artifacts import ModelBundle
from nlu.predictor import Outputs, RawScores, score_by_length, sub_batch_size


class OnnxBackend:
    """Same contract as `TorchBackend.score`, on an ONNX graph; sub-batches of similar length."""

    def __init__(self, bundle: ModelBundle, onnx_path: str | Path, max_batch: int = 64, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or int(os.environ.get("FRONTDESK_ONNX_THREADS", "0"))
        # onnxruntime's workers spin for a while after each run by default. Between runs this process
        # still has work for those cores (the neighbour search, the HTTP event loop), and spinning
        # workers starved it: the decision step after a pass took 3x longer on 2 cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.bundle = bundle
        self.sub_batch = sub_batch_size("cpu", max_batch)
        self.pad_id = bundle.tokenizer.pad_token_id or 0

    def score(self, texts: Sequence[str]) -> RawScores:
        encoded = self.bundle.tokenizer(list(texts), truncation=True, max_length=self.bundle.max_length)["input_ids"]
        return score_by_length(encoded, self.sub_batch, self._run)

    def _run(self, chunk: list[Sequence[int]]) -> Outputs:
        width = max(len(ids) for ids in chunk)
        ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, tokens in enumerate(chunk):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        intent, sentiment, embeddings = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        return intent.astype(np.float32), sentiment.astype(np.float32), embeddings.astype(np.float32)
