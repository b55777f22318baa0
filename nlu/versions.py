"""Model versions, and the checks a model directory passes before it may serve customers.

A version is a stable id derived from the directory's content: `NAME-HASH`, where NAME is
the directory's name (so a person recognises it) and HASH the first 10 hex digits of a
SHA-256 over every file a model is made of (relative path, size and bytes; `metrics.json`
and `plots/` are reports, not the model, and are left out). The same files give the same
version on every worker and after a copy to another host; retraining into the same
directory gives a new one. An ensemble's version also covers each member directory.
Hashing reads the weights once (about 0.2 s for the 90 MB MiniLM model).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from nlu.artifacts import ModelLoadError

NOT_MODEL = ("metrics.json", "plots")  # evaluation output written beside the model; not part of it
PROBE_TEXTS = ("hello", "where is my order?")  # any text works: the probe checks the model answers at all
_CHUNK = 1 << 20


def _model_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and p.relative_to(path).parts[0] not in NOT_MODEL)


def _digest(path: Path, digest, seen: set[Path]) -> None:
    from nlu.ensemble import is_ensemble, member_dirs

    path = path.resolve()
    if path in seen:
        return
    seen.add(path)
    for file in _model_files(path):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    if is_ensemble(path):
        for member in member_dirs(path):
            _digest(member, digest, seen)


def model_version(model_dir: str | Path) -> str:
    """`NAME-HASH` for a model directory (see the module docstring); `ModelLoadError` if it is no directory."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelLoadError(f"model directory {path} does not exist")
    digest = hashlib.sha256()
    try:
        _digest(path, digest, set())
    except OSError as exc:
        raise ModelLoadError(f"model directory {path} cannot be read: {exc.strerror or exc}") from exc
    return f"{path.resolve().name}-{digest.hexdigest()[:10]}"


def probe(predictor) -> None:
    """Answer the probe texts and check the answers are well formed; `ModelLoadError` naming what is wrong.

    Loading proves the files parse; this proves the model runs on this worker's device and
    produces what the bot reads (an intent it knows, a confidence, sentiment scores).
    """
    try:
        results = predictor.predict(list(PROBE_TEXTS))
    except Exception as exc:  # any backend failure means the model cannot serve
        raise ModelLoadError(f"the model loaded but failed the probe: {type(exc).__name__}: {exc}") from exc
    labels = set(predictor.bundle.intent_labels) | {"oos"}
    if len(results) != len(PROBE_TEXTS):
        raise ModelLoadError(f"the model answered {len(results)} result(s) for {len(PROBE_TEXTS)} probe texts")
    for result in results:
        if result.intent not in labels or not 0.0 <= result.confidence <= 1.0 or not result.sentiment_scores:
            raise ModelLoadError(f"the model answered a malformed probe result: intent {result.intent!r}, "
                                 f"confidence {result.confidence!r}")


def load_checked(model_dir: str | Path, device: str = "auto", *, max_batch: int = 64, backend: str = "auto"):
    """A `Predictor` for `model_dir` that has passed the probe, carrying its version; else `ModelLoadError`."""
    from nlu.engine import load_predictor

    try:
        predictor = load_predictor(Path(model_dir), device, max_batch, backend)  # stamps the version
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from exc
    except OSError as exc:  # a name too long, a directory that is not readable, ...: the caller's input
        raise ModelLoadError(f"cannot read {str(model_dir)[:200]}: {exc.strerror or type(exc).__name__}") from exc
    probe(predictor)
    return predictor
