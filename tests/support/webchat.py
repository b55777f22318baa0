"""Opening the web chat's socket as the page does: a bare `/web/ws`, then the session in a hello frame."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager


def hello(session: str | None = None) -> dict:
    """The socket's first frame: the session to continue, or none to be given a new one."""
    return {"type": "hello", "session": session} if session is not None else {"type": "hello"}


@contextmanager
def chat_socket(ws_url: str, session: str | None = None, **options) -> Iterator:
    """A real WebSocket client (`websockets`) on `ws_url` (ending in /web/ws) that has said hello."""
    from websockets.sync.client import connect

    with connect(ws_url, **options) as ws:
        ws.send(json.dumps(hello(session)))
        yield ws
