"""The Model page (`/console/model`): the staff console's view of the serving model and of a shadow model.

Static files only, public like the console and the Review page (they hold no data): the page reads
and changes everything through `/admin/model...` (adapters/http/model_admin.py) with the admin's
token, so the admin gate stays the one place that decides who may deploy. Mounted by app.py before
the console's own `/console/{name}` route, which would otherwise answer 404 for these names, and
served with the console's security headers (no inline script or style anywhere on the page).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from adapters.http.desk_page import HEADERS

pages = APIRouter(tags=["console"], include_in_schema=False)

STATIC = Path(__file__).resolve().parents[1] / "static"
# URL name -> (file under adapters/static, media type): only these, no path from the URL reaches the file system.
PAGE_FILES = {"model": ("model.html", "text/html"), "model.js": ("model.js", "text/javascript"),
              "model.css": ("model.css", "text/css")}


def _page_route(url_name: str, file_name: str, media_type: str) -> None:
    async def serve() -> FileResponse:
        return FileResponse(STATIC / file_name, media_type=media_type, headers=HEADERS)

    pages.add_api_route(f"/console/{url_name}", serve, methods=["GET"], name=f"model_page_{url_name}")


for _name, (_file, _media) in PAGE_FILES.items():
    _page_route(_name, _file, _media)
