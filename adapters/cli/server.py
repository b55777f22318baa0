"""One admin request from the command line to a running server: its token found as `frontdesk run` left it
(FRONTDESK_ADMIN_TOKEN, else the generated file), and a server that cannot be reached said in one line."""

from __future__ import annotations

import httpx

from adapters.cli.exit_codes import fail
from adapters.runtime.serving import cli_admin_token


def admin_request(method: str, url: str, path: str, body: dict | None = None, timeout: float = 300) -> httpx.Response:
    """The server's response, whatever its status (the caller reads the refusals it expects)."""
    try:
        token = cli_admin_token()
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        return httpx.request(method, f"{url.rstrip('/')}{path}", json=body, timeout=timeout,
                             headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from None
