"""Model versions across the fleet: this process joins `nlu.sync.ModelSync` (docs/MODEL_LIFECYCLE.md).

A deploy or restore recorded in Redis reaches every worker; this module starts the follower in a
server process, with this process's device, backend and batch settings for loading a version.
The HTTP side (`/admin/model...`) is adapters/http/model_admin.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import redis

from adapters.runtime import metrics
from adapters.runtime.settings import Settings
from bot.keys import Keys

log = logging.getLogger("frontdesk")


class ModelPathRefused(ValueError):
    """A model directory outside FRONTDESK_MODELS_ROOT (after symlinks and `..`): never loaded."""


def refuse_outside_root(settings: Settings, path: str | Path) -> None:
    """`ModelPathRefused` unless `path` may be loaded: with FRONTDESK_MODELS_ROOT set, the directory, every
    link inside it and every ensemble member must resolve under that root (the configured FRONTDESK_MODEL_DIR
    is always allowed: deploying it is how to go back to it). Unset, any directory may be loaded."""
    root = settings.models_root
    if root is None:
        return
    root, resolved = root.resolve(), Path(path).resolve()
    if settings.model_dir is not None and resolved == Path(settings.model_dir).resolve():
        return
    refusal = f"only model directories under FRONTDESK_MODELS_ROOT ({root}) can be deployed or checked"
    if not resolved.is_relative_to(root):
        raise ModelPathRefused(f"{path} is outside FRONTDESK_MODELS_ROOT: {refusal}")
    if resolved.is_dir():
        for entry in resolved.rglob("*"):
            if entry.is_symlink() and not entry.resolve().is_relative_to(root):
                raise ModelPathRefused(f"{entry} links outside FRONTDESK_MODELS_ROOT: {refusal}")
    if (resolved / "ensemble.json").is_file():
        from nlu.ensemble import member_dirs  # heavy (torch, through nlu.artifacts)

        for member in member_dirs(resolved):
            refuse_outside_root(settings, member)


def loader(settings: Settings):
    """path -> a loaded, probed Predictor, with this process's device, backend and batch settings; only from
    under FRONTDESK_MODELS_ROOT when it is set (a deploy recorded in Redis by anyone else too)."""
    from nlu.artifacts import ModelLoadError
    from nlu.versions import load_checked  # heavy (torch): imported when a model is loaded

    def load(path: str):
        try:
            refuse_outside_root(settings, path)
        except ModelPathRefused as exc:
            raise ModelLoadError(str(exc)) from None
        return load_checked(path, settings.device, max_batch=settings.max_batch, backend=settings.backend)

    return load


def start_model_sync(engine, client: redis.Redis, settings: Settings, on_swap: Callable[[], None]):
    """Join the fleet's model versions: the running `nlu.sync.ModelSync` (called once the engine and Redis are up).

    A deploy already recorded in Redis is caught up to here first, so the FAQ calibrates with the model
    that will serve; from then on every swap calls `on_swap` (the FAQ's bars and the escalation line are
    chosen again with the model now deciding beside them).
    """
    from nlu.sync import ModelSync  # heavy (torch, through nlu.artifacts)

    sync = ModelSync(engine, client, Keys(settings.redis_prefix).model, loader(settings),
                     path=str(Path(settings.model_dir).resolve()))
    metrics.set_model_version(engine.version)
    sync.listeners.append(metrics.set_model_version)
    try:
        sync.catch_up()  # a deploy recorded in Redis: serve it before the FAQ calibrates with the model
    except redis.RedisError:
        log.warning("model versions: Redis unavailable at start; the sync thread will catch up")
    sync.listeners.append(lambda version: on_swap())
    sync.start()
    return sync
