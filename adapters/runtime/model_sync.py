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


def loader(settings: Settings):
    """path -> a loaded, probed Predictor, with this process's device, backend and batch settings."""
    from nlu.versions import load_checked  # heavy (torch): imported when a model is loaded

    return lambda path: load_checked(path, settings.device, max_batch=settings.max_batch, backend=settings.backend)


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
