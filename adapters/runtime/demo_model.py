"""The demo model `frontdesk run` serves when FRONTDESK_MODEL_DIR is unset: trained, distilled and exported once."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from adapters.runtime.settings import Settings


@contextmanager
def _exclusive(lock_path: Path):
    """A file lock, so several workers starting together train the demo model only once."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_demo_model(settings: Settings, console: Console | None = None, config=None, distill_config=None) -> Path:
    """Return the demo model directory, building it from the bundled demo data if absent.

    What it builds follows the distillation benchmark (docs/BENCHMARKS.md): the 6-layer model is trained
    (kept as `demo-teacher`), distilled into a `FRONTDESK_DEMO_LAYERS`-layer student and exported to int8
    ONNX, which is what is served; with FRONTDESK_DEMO_LAYERS=0 the 6-layer model itself is served.
    `config` (TrainConfig) and `distill_config` (DistillConfig) override the recipes, for tests.
    """
    from nlu.artifacts import REQUIRED_FILES

    target = settings.demo_model_dir
    console = console or Console(stderr=True)

    def complete(path: Path) -> bool:
        return all((path / name).is_file() for name in REQUIRED_FILES)

    if complete(target):
        return target
    with _exclusive(target.parent / ".demo-model.lock"):
        if complete(target):  # another process built it while we waited
            return target
        teacher = _demo_teacher(settings, console, config, complete)
        staging = target.parent / ".demo-model.partial"
        _remove(staging)
        if settings.demo_layers:
            _demo_student(settings, console, teacher, staging, distill_config)
        else:
            shutil.copytree(teacher, staging)
        _remove(target)
        os.replace(staging, target)  # the model appears complete or not at all
    return target


def _remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def _demo_data() -> tuple[list, list, dict]:
    from nlu.data import demo_intents_path, demo_sentiment_path, load_labelled_csv

    intents, sentiment = load_labelled_csv(demo_intents_path(), "intent"), load_labelled_csv(
        demo_sentiment_path(), "sentiment")
    return intents.examples, sentiment.examples, {"intent": intents.summary(), "sentiment": sentiment.summary()}


def _demo_teacher(settings: Settings, console: Console, config, complete) -> Path:
    """The 6-layer demo model, trained unless a complete one is already there."""
    from nlu.fit import fit
    from nlu.progress import RichProgress
    from nlu.train import TrainConfig

    teacher = settings.demo_teacher_dir
    if complete(teacher):
        return teacher
    console.print(f"No model yet: training the demo model into {teacher} (a few minutes on a CPU).")
    staging = teacher.parent / ".demo-teacher.partial"
    _remove(staging)
    intents, sentiment, data = _demo_data()
    fit(intents, sentiment, staging, config or TrainConfig(epochs=8, augment=True, device=settings.device),
        progress=RichProgress(console, "training demo model"), data=data)
    _remove(teacher)
    os.replace(staging, teacher)
    return teacher


def _demo_student(settings: Settings, console: Console, teacher: Path, out: Path, distill_config) -> None:
    """Distil the teacher into `out`, then export it to int8 ONNX in place (the served directory)."""
    from nlu.distill import DistillConfig, distill
    from nlu.export import export_onnx
    from nlu.progress import RichProgress

    config = distill_config or DistillConfig(device=settings.device)
    config = dataclasses.replace(config, layers=settings.demo_layers)
    console.print(f"Distilling it into a {config.layers}-layer model and exporting that to int8 ONNX.")
    intents, sentiment, data = _demo_data()
    student = out.with_name(out.name + "-student")
    _remove(student)
    distill(teacher, student, intents, sentiment, config,
            progress=RichProgress(console, "distilling demo model"), data=data)
    export_onnx(student, out, "int8")
    _remove(student)



def ensure_demo_query_encoder(settings: Settings, console: Console, kb: Path) -> Path | None:
    """The query encoder `frontdesk run` serves when FRONTDESK_QUERY_ENCODER is unset: the retrieval encoder in
    int8 ONNX (all its layers, nothing trained), made once per retrieval encoder under FRONTDESK_HOME, its
    agreement checked on `kb`'s texts. None (the plain encoder serves) when it cannot be made."""
    import hashlib

    from knowledge.embedder import default_model_path
    from knowledge.query_distill import distill_query_encoder, knowledge_texts
    from knowledge.query_encoder import QueryEncoderError, QueryEncoderInfo
    from knowledge.sources import KnowledgeBaseError

    teacher = str(settings.faq_encoder or default_model_path())
    # Keyed by its teacher: an encoder made for another retrieval encoder would be refused at load.
    out = settings.home / "query-encoders" / hashlib.sha256(teacher.encode()).hexdigest()[:12]
    with _exclusive(out.with_suffix(".lock")):
        try:  # made before teachers' fingerprints were recorded: made again, so workers need not load the teacher
            if QueryEncoderInfo.read(out).teacher_fingerprint:
                return out
        except QueryEncoderError:
            pass
        console.print(f"Making the query encoder (once, about 20 s): {out}")
        try:
            distill_query_encoder(teacher, knowledge_texts(kb), out, layers=6)
        except (KnowledgeBaseError, OSError, ValueError) as exc:
            console.print(f"[yellow]no query encoder ({exc}): questions are embedded by the retrieval encoder")
            return None
    return out
