"""Scoring through onnxruntime: the CPU serving path for an exported model (see `nlu.export`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlu.artifacts import ModelBundle
from nlu.predictor import RawScores


class OnnxBackend:
    """Same contract as `TorchBackend.score`, on an ONNX graph; sub-batches of similar length."""

    def __init__(self, bundle: ModelBundle, onnx_path: str | Path, max_batch: int = 64, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or int(os.environ.get("FRONTDESK_ONNX_THREADS", "0"))
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.bundle = bundle
        self.max_batch = max_batch
        self.pad_id = bundle.tokenizer.pad_token_id or 0

    def score(self, texts: Sequence[str]) -> RawScores:
        encoded = self.bundle.tokenizer(list(texts), truncation=True, max_length=self.bundle.max_length)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        parts: list[list[np.ndarray]] = [[], [], []]
        for start in range(0, len(order), self.max_batch):
            chunk = [encoded[i] for i in order[start : start + self.max_batch]]
            width = max(len(ids) for ids in chunk)
            ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, tokens in enumerate(chunk):
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            outputs = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            for store, value in zip(parts, outputs, strict=True):
                store.append(value.astype(np.float32))
        inverse = np.argsort(np.asarray(order))
        intent, sentiment, embeddings = (np.concatenate(p)[inverse] for p in parts)
        return RawScores(intent_probs=intent, sentiment_probs=sentiment, embeddings=embeddings)
