"""A fast encoder for customers' questions: a small int8 ONNX student of the retrieval encoder.

The knowledge base's entries and passages are embedded once, at build time, by the retrieval encoder
(`knowledge.embedder.Embedder`). A customer's question is embedded on every message, so that side gets a
student distilled into the same vector space (`knowledge.query_distill`, `frontdesk kb encoder`): fewer
layers, int8 weights, onnxruntime in length-sorted passes side by side (`nlu.onnx_backend`), like the intent
model. The rule it is held to: a query encoder serves only beside the encoder it was distilled from, and only
while it still answers like it. Its directory carries probe texts and the teacher's vectors for them, and
`load_query_encoder` refuses, naming the file or the disagreement, a directory that cannot load, a graph
whose vectors drift from the stored ones, or a teacher other than the one it was taught by: a teacher whose files
hash as the manifest records is that one; any other must give the stored vectors for the probe texts.

Directory (a sentence-transformers directory, so `SentenceTransformer(dir)` loads the fp32 student too):
    query_encoder.json   this manifest: layers, dimension, agreement measured when it was made, probes
    probes.npy           the teacher's vectors for the manifest's probe texts
    model.onnx           the int8 graph that is served (mean-pooled, normalised vectors)
    tokenizer.json ...   the teacher's tokenizer
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlu.artifacts import ModelLoadError
from nlu.onnx_backend import ONNX_FILE, PASS_TEXTS, default_lanes, lane_pool, open_session, padded_feeds
from nlu.predictor import run_by_length

MANIFEST = "query_encoder.json"
PROBES = "probes.npy"
TOKENIZER = "tokenizer.json"
FORMAT = "frontdesk-query-encoder/1"
# Mean cosine with the teacher's stored vectors below which a student is refused: a healthy student measured
# 0.97-0.99 on held-out texts (docs/BENCHMARKS.md); a damaged graph or an untrained one lands far below.
MIN_AGREEMENT = 0.9
# The teacher must reproduce its own stored vectors (float rounding apart): else it is another encoder.
SAME_TEACHER = 0.999


class QueryEncoderError(ModelLoadError):
    """A query-encoder directory that cannot be served; the message names the file or the disagreement."""


@dataclass(frozen=True)
class QueryEncoderInfo:
    """What `query_encoder.json` records."""

    layers: int
    dim: int
    max_length: int
    teacher: str  # the teacher's directory name, for people; the probes decide whether it is the same one
    probe_texts: tuple[str, ...]
    agreement: dict  # measured on held-out texts when made: mean/min cosine, top-1 agreement
    # The teacher directory's `model_fingerprint` when made ("" in older manifests): a teacher with the same one
    # is the same encoder without being run on the probes (so a worker need not load it at all).
    teacher_fingerprint: str = ""

    def to_dict(self) -> dict:
        return {"format": FORMAT, "layers": self.layers, "dim": self.dim, "max_length": self.max_length,
                "teacher": self.teacher, "teacher_fingerprint": self.teacher_fingerprint,
                "agreement": self.agreement, "probe_texts": list(self.probe_texts), "file": ONNX_FILE}

    @classmethod
    def read(cls, folder: Path) -> QueryEncoderInfo:
        path = folder / MANIFEST
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise QueryEncoderError(f"{path} is missing: not a query-encoder directory "
                                    f"(make one with `frontdesk kb encoder`)") from exc
        except (OSError, ValueError) as exc:
            raise QueryEncoderError(f"{path} is unreadable: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise QueryEncoderError(f"{path} is not a {FORMAT} manifest")
        try:
            return cls(int(raw["layers"]), int(raw["dim"]), int(raw["max_length"]), str(raw["teacher"]),
                       tuple(str(t) for t in raw["probe_texts"]), dict(raw.get("agreement") or {}),
                       str(raw.get("teacher_fingerprint") or ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise QueryEncoderError(f"{path} lacks or garbles {exc}") from exc


class QueryEncoder:
    """Normalised question vectors from a query-encoder directory; safe to call from several threads."""

    def __init__(self, folder: str | Path, lanes: int | None = None):
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.info = QueryEncoderInfo.read(self.folder)
        try:
            self.tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER))
        except Exception as exc:  # tokenizers raises its own Exception type for a garbled file
            raise QueryEncoderError(f"{self.folder / TOKENIZER} cannot be read as a tokenizer: {exc}") from exc
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.info.max_length)
        graph = self.folder / ONNX_FILE
        try:
            self.session = open_session(graph)
        except ModelLoadError as exc:
            raise QueryEncoderError(str(exc)) from exc
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        self._pool = lane_pool(lanes or default_lanes())
        self.dim = self.info.dim
        self.model_path = str(self.folder)
        # Content, not path: the embedding cache's keys must change when the graph does.
        self.model_id = "query-" + hashlib.sha256(graph.read_bytes()).hexdigest()[:12]
        self.calls = 0
        self._count = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._count:
            self.calls += len(texts)
        encoded = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        (vectors,) = run_by_length(encoded, PASS_TEXTS, self._run, self._pool.map if self._pool else map)
        return vectors

    def _run(self, chunk: list[Sequence[int]]) -> tuple[np.ndarray]:
        (vectors,) = self.session.run(None, padded_feeds(chunk, self.pad_id))
        return (np.asarray(vectors, dtype=np.float32),)

    def check(self, teacher) -> float:
        """The mean cosine with the teacher's stored probe vectors; `QueryEncoderError` when `teacher` is not
        the encoder this was distilled from, or when this no longer answers like it."""
        stored = _stored_probes(self.folder, self.info)
        if stored.shape[1] != teacher.dim or stored.shape[1] != self.dim:
            raise QueryEncoderError(f"{self.folder} holds {stored.shape[1]}-d vectors; the knowledge base's encoder "
                                    f"({teacher.model_path}) gives {teacher.dim}-d ones")
        texts = list(self.info.probe_texts)
        recorded = self.info.teacher_fingerprint
        if not (recorded and recorded == getattr(teacher, "fingerprint", "")):
            self._check_teacher(teacher, texts, stored)
        agreement = float(np.mean(np.sum(self.encode(texts) * stored, axis=1)))
        if not agreement >= MIN_AGREEMENT:  # NaN from a broken graph fails too
            raise QueryEncoderError(f"{self.folder / ONNX_FILE} no longer answers like its teacher: mean cosine "
                                    f"{agreement:.3f} on its {len(texts)} probe texts, below {MIN_AGREEMENT}")
        return agreement

    def _check_teacher(self, teacher, texts: list[str], stored: np.ndarray) -> None:
        """Refuse `teacher` unless it reproduces the stored probe vectors: it is run on them where its files are not
        the ones recorded when this was made (or none were recorded)."""
        same = float(np.mean(np.sum(teacher.encode(texts) * stored, axis=1)))
        if same < SAME_TEACHER:
            raise QueryEncoderError(
                f"{self.folder} was distilled from another encoder ({self.info.teacher}): the knowledge base's "
                f"encoder ({teacher.model_path}) reproduces its probe vectors at mean cosine {same:.3f}")


def _stored_probes(folder: Path, info: QueryEncoderInfo) -> np.ndarray:
    path = folder / PROBES
    try:
        stored = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise QueryEncoderError(f"{path} is missing or unreadable: {exc}") from exc
    if stored.ndim != 2 or len(stored) != len(info.probe_texts) or not len(stored):
        raise QueryEncoderError(f"{path} does not hold one vector per probe text of {folder / MANIFEST}")
    return stored.astype(np.float32)


def load_query_encoder(folder: str | Path, teacher) -> QueryEncoder:
    """A query encoder checked against `teacher` (the knowledge base's `Embedder`); `QueryEncoderError` naming
    what is wrong otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise QueryEncoderError(f"{folder} is not a directory")
    encoder = QueryEncoder(folder)
    encoder.check(teacher)
    return encoder
