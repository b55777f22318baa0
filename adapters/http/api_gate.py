"""Who may call the public API routes, checked before routing and before a byte of the body is read.

- `POST /chat` (the REST channel) takes `Authorization: Bearer` with FRONTDESK_CHAT_TOKEN or the admin
  token (FRONTDESK_ADMIN_TOKEN). Its caller chooses the `sender` it speaks as, so it is for the
  operator's own servers: without FRONTDESK_CHAT_TOKEN it refuses everyone, the admin included, with a
  401 naming the variable (`frontdesk run` generates one; `frontdesk serve` leaves it to the operator).
- `POST /predict` takes FRONTDESK_PREDICT_TOKEN or the admin token when FRONTDESK_PREDICT_TOKEN is set, and
  is open otherwise (it hands out classifications of the caller's own texts, nobody's data). Either way it
  has its own per-address limit, FRONTDESK_PREDICT_RATE_LIMIT: the same sliding count in Redis as the
  limit in front of every route (`adapters.http.address_limit.SlidingCount`), under a key of its own, so a
  client that is allowed many chat requests cannot spend them all on the model. Its queue bound is in
  `adapters.http.predict_api`.

Any other credential (none, a wrong one, a staff member's, another route's) is 401 with
`WWW-Authenticate: Bearer`, whatever the body. A supplied token is compared in constant time with every
configured one. The credential that called is left in the scope (`caller`): `/chat` keeps each caller's
message ids apart (adapters/channels/rest.py).
"""

from __future__ import annotations

import hmac
from enum import StrEnum

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.http.address_limit import SlidingCount, limited, too_many
from adapters.http.client_address import settled
from adapters.http.dependencies import app_components
from bot.keys import Keys

CHAT_PATH, PREDICT_PATH = "/chat", "/predict"
STATE_KEY = "caller"
MAX_TOKEN_CHARS = 256  # longer than any token anyone sets: refused without a comparison


class Credential(StrEnum):
    """Which configured token a request carried."""

    ADMIN = "admin"
    CHAT = "chat"
    PREDICT = "predict"


def bearer(scope: Scope) -> str | None:
    """The token of `Authorization: Bearer TOKEN`; None for anything else."""
    scheme, _, supplied = Headers(scope=scope).get("authorization", "").partition(" ")
    supplied = supplied.strip()
    if scheme.lower() != "bearer" or not supplied or len(supplied) > MAX_TOKEN_CHARS:
        return None
    return supplied


def credential(scope: Scope, accepted: dict[Credential, SecretStr | None]) -> Credential | None:
    """The accepted credential the request's bearer token is, compared in constant time with each one set."""
    supplied = bearer(scope)
    if supplied is None:
        return None
    found = None
    for name, token in accepted.items():
        if token is not None and hmac.compare_digest(supplied.encode(), token.get_secret_value().encode()):
            found = found or name  # no early exit: every configured token is compared
    return found


def unauthorized(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def caller(scope: Scope) -> Credential | None:
    """The credential the gate accepted for this request; None when it did not run or refused."""
    found = (scope.get("state") or {}).get(STATE_KEY)
    return found if isinstance(found, Credential) else None


class ApiGate:
    """ASGI middleware: the token checks above for `/chat` and `/predict`, and `/predict`'s own address limit."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.predict_count = SlidingCount(Keys.predict_rate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        components = app_components(scope.get("app")) if path in (CHAT_PATH, PREDICT_PATH) else None
        if components is None:
            await self.app(scope, receive, send)
            return
        refusal = await (self._chat(scope, components.settings) if path == CHAT_PATH
                         else self._predict(scope, components.settings))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _chat(scope: Scope, settings) -> JSONResponse | None:
        if settings.chat_token is None:
            return unauthorized("POST /chat is off: FRONTDESK_CHAT_TOKEN is not set on this server. Set it, and "
                                "send `Authorization: Bearer <that token>` from your own servers")
        found = credential(scope, {Credential.CHAT: settings.chat_token, Credential.ADMIN: settings.admin_token})
        if found is None:
            return unauthorized("POST /chat needs `Authorization: Bearer` with FRONTDESK_CHAT_TOKEN "
                                "(or the admin token)")
        scope.setdefault("state", {})[STATE_KEY] = found
        return None

    async def _predict(self, scope: Scope, settings) -> JSONResponse | None:
        if settings.predict_token is not None:
            found = credential(scope, {Credential.PREDICT: settings.predict_token,
                                       Credential.ADMIN: settings.admin_token})
            if found is None:
                return unauthorized("POST /predict needs `Authorization: Bearer` with FRONTDESK_PREDICT_TOKEN "
                                    "(or the admin token)")
            scope.setdefault("state", {})[STATE_KEY] = found
        client = settled(scope)
        pair = settings.predict_rate_limit_pair
        if not limited(settings, client, pair):
            return None
        count, window = pair
        wait = await self.predict_count.over(settings, client.bucket, count, window)
        if not wait:
            return None
        return too_many("/predict requests", count, window, "FRONTDESK_PREDICT_RATE_LIMIT", wait)
