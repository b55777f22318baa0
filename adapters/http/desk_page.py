"""The staff desk's web page (the "console") at `/console`: one static page over the `/admin/...` JSON routes.

The page itself is public (it holds no data); everything it shows comes from the admin
routes with the token the staff member types in, so the admin gate stays the one place
that decides who sees conversations. No build step: plain HTML, CSS and JavaScript from
`adapters/static/console/`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(tags=["console"], include_in_schema=False)

STATIC = Path(__file__).resolve().parents[1] / "static" / "console"
# Only these files are served (no path from the URL ever reaches the file system).
ASSETS = {"console.css": "text/css", "console.js": "text/javascript", "console-desk.js": "text/javascript",
          "staff-api.js": "text/javascript"}
# Scripts and styles from this server only, and no inline script: a message that slipped
# past textContent still could not run.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get("/console")
async def console_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/console/{name}")
async def console_asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, f"no console file {name!r}")
    return FileResponse(STATIC / name, media_type=media_type, headers=HEADERS)
