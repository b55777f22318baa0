"""What routes depend on, as FastAPI dependencies: the app's components and the parts they need loaded.

The one place that reads the app's state (`app.state`; the app is made in adapters/http/app.py).
A route takes `ComponentsDep` (never refused), `SettingsDep`, or the part it needs: `BotDep` or
`KbDep`, each answering 503 through `NotReady` while that part is still loading (the handler in
adapters/http/app.py), exactly as `components.need(...)` does. There is no engine dependency on
purpose: its type would import torch with the app, which loads the model in the background instead;
`POST /predict` takes `ComponentsDep` and `components.need("engine")`.

FastAPI solves a route's dependencies before it validates the route's parameters and body, so a
`BotDep` answers 503 before a 422 for a bad body. A route that must refuse a bad request with 422
even while the bot is still loading takes `ComponentsDep` and calls `components.need("bot")` after
its own checks, as the escalation actions and `POST /chat` do.

ASGI middleware, which has the app but no request, uses `app_components`; the admin gate and the
audit log share one set of `AdminServices` per app (`admin_services`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from adapters.runtime.components import Components
from adapters.runtime.settings import Settings
from bot.audit import AuditLog
from bot.core import Bot
from bot.customers import CustomerData
from bot.keys import Keys
from bot.staff import StaffDirectory
from knowledge.service import KnowledgeBase


def app_components(app: object) -> Components | None:
    """The components `app` was created with; None for an app that has none (not one of ours)."""
    return getattr(getattr(app, "state", None), "components", None)


def get_components(connection: HTTPConnection) -> Components:
    """The app's components, for an HTTP request or a web socket alike."""
    return connection.app.state.components


ComponentsDep = Annotated[Components, Depends(get_components)]


def get_settings(components: ComponentsDep) -> Settings:
    return components.settings


def get_bot(components: ComponentsDep) -> Bot:
    """The bot; `NotReady` (503) while it is not built yet."""
    return components.need("bot")


def get_kb(components: ComponentsDep) -> KnowledgeBase:
    """The knowledge base; `NotReady` (503) while it is not loaded."""
    return components.need("kb")


SettingsDep = Annotated[Settings, Depends(get_settings)]
BotDep = Annotated[Bot, Depends(get_bot)]
KbDep = Annotated[KnowledgeBase, Depends(get_kb)]


@dataclass
class AdminServices:
    """What the /admin routes keep per Redis client: staff accounts, the audit log, customers' data."""

    client: object
    staff: StaffDirectory
    audit: AuditLog
    customers: CustomerData


def admin_services(app: object) -> AdminServices | None:
    """The app's staff directory, audit log and customer data over its Redis; None while Redis is not loaded.

    Made once per Redis client and kept on the app, so the gate and every route share them.
    """
    components = app_components(app)
    client = components.redis if components is not None else None
    if client is None:
        return None
    cached = getattr(app.state, "admin_services", None)
    if cached is None or cached.client is not client:
        settings = components.settings
        keys = Keys(settings.redis_prefix)
        cached = AdminServices(client, StaffDirectory(client, keys, token_days=settings.staff_token_days),
                               AuditLog(client, keys, days=settings.audit_days),
                               CustomerData(client, keys, removers=components.channels.remover))
        app.state.admin_services = cached
    return cached


def need_admin_services(connection: HTTPConnection) -> AdminServices:
    """`admin_services`, or 503 while Redis is not connected (called in a route, after its own checks)."""
    found = admin_services(connection.app)
    if found is None:
        raise HTTPException(503, "Redis is not connected yet")
    return found


AdminServicesDep = Annotated[AdminServices, Depends(need_admin_services)]
