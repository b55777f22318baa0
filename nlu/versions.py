"""Model versions, and the checks a model directory passes before it may serve customers.

A version is `NAME-HASH`, computed from the directory's files by `nlu.version_id.model_version`
(re-exported here, where callers have always found it). A model may serve once it loads through
the engine (`nlu.engine.load_predictor`, which stamps that version on it) and answers the probe.
"""

from __future__ import annotations

from pathlib import Path

from nlu.artifacts import ModelLoadError
from nlu.engine import load_predictor
from nlu.version_id import NOT_MODEL, model_version

__all__ = ["NOT_MODEL", "PROBE_TEXTS", "load_checked", "model_version", "probe"]

PROBE_TEXTS = ("hello", "where is my order?")  # any text works: the probe checks the model answers at all


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
    try:
        predictor = load_predictor(Path(model_dir), device, max_batch, backend)  # stamps the version
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from exc
    except OSError as exc:  # a name too long, a directory that is not readable, ...: the caller's input
        raise ModelLoadError(f"cannot read {str(model_dir)[:200]}: {exc.strerror or type(exc).__name__}") from exc
    except ModelLoadError:
        raise
    except Exception as exc:  # a loader's own type not yet named by file: the directory, never a 500
        raise ModelLoadError(f"{str(model_dir)[:200]} cannot be loaded: {type(exc).__name__}") from exc
    probe(predictor)
    return predictor
