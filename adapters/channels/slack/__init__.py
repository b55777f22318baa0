"""Slack: the Events API, Block Kit actions and a slash command over HTTP (or Socket Mode), via slack-bolt.

The routes are always mounted, so a server without Slack configured says so (404/503
with the reason) instead of answering like an unknown path. `start` returns the adapter
when `SLACK_BOT_TOKEN` and either `SLACK_SIGNING_SECRET` (HTTP) or `SLACK_APP_TOKEN`
(Socket Mode) are set; the app registers it as the "slack" output channel and staff
notifier, which is also how the routes find it.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from adapters.channels.slack.adapter import CHANNEL, SlackAdapter
from adapters.http.dependencies import ComponentsDep
from adapters.runtime.components import Components

log = logging.getLogger("frontdesk.slack")
router = APIRouter(prefix="/slack", tags=["slack"])

__all__ = ["SlackAdapter", "router", "start"]


async def start(components: Components) -> SlackAdapter | None:
    """The running adapter, or None when Slack is not configured (or configured too partially to run)."""
    settings = components.settings
    if settings.slack_bot_token is None:
        return None
    if settings.slack_signing_secret is None and settings.slack_app_token is None:
        log.error("Slack stays off: SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET (Events API over HTTP) "
                  "nor SLACK_APP_TOKEN (Socket Mode)")
        return None
    if not settings.slack_support_channel:
        log.warning("Slack: SLACK_SUPPORT_CHANNEL is not set, so escalations are not posted to Slack")
    adapter = SlackAdapter(components)
    await adapter.connect()
    return adapter


async def _dispatch(request: Request, components: Components) -> Response:
    adapter = components.channels.outputs.get(CHANNEL)
    if not isinstance(adapter, SlackAdapter):
        if components.settings.slack_bot_token is None:
            return JSONResponse({"detail": "Slack is not configured on this server "
                                           "(set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET)"}, status_code=404)
        return JSONResponse({"detail": "Slack is not running: SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for "
                                       "Socket Mode) is missing; see the server log"}, status_code=503)
    if not adapter.http:
        return JSONResponse({"detail": "Slack runs in Socket Mode on this server; set SLACK_SIGNING_SECRET to "
                                       "accept Slack's HTTP requests as well"}, status_code=404)
    return await adapter.inbound.handle_http(request)  # signature checked there, then bolt


@router.post("/events", summary="Slack Events API (signature-verified)")
async def events(request: Request, components: ComponentsDep) -> Response:
    return await _dispatch(request, components)


@router.post("/interactions", summary="Slack Block Kit actions (signature-verified)")
async def interactions(request: Request, components: ComponentsDep) -> Response:
    return await _dispatch(request, components)


@router.post("/commands", summary="Slack slash commands (signature-verified)")
async def commands(request: Request, components: ComponentsDep) -> Response:
    return await _dispatch(request, components)
