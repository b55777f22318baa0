"""A model directory's version id: what every result, log line and fleet report names a model by.

A version is a stable id derived from the directory's content: `NAME-HASH`, where NAME is
the directory's name (so a person recognises it) and HASH the first 10 hex digits of a
SHA-256 over every file a model is made of (relative path, size and bytes; `metrics.json`
and `plots/` are reports, not the model, and are left out). The same files give the same
version on every worker and after a copy to another host; retraining into the same
directory gives a new one. An ensemble's version also covers each member directory.
Hashing reads the weights once (about 0.2 s for the 90 MB MiniLM model).

Its own module so that both the loader (`nlu.engine`, which stamps it on a predictor) and the
serving checks (`nlu.versions`, which load through the engine) use it without importing each other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from nlu.artifacts import ModelLoadError
from nlu.ensemble import is_ensemble, member_dirs

NOT_MODEL = ("metrics.json", "plots")  # evaluation output written beside the model; not part of it
_CHUNK = 1 << 20


def _model_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and p.relative_to(path).parts[0] not in NOT_MODEL)


def _digest(path: Path, digest, seen: set[Path]) -> None:
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
