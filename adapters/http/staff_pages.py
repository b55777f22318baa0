"""The staff console's own pages beside it: Review, Model and Gaps (`/console/review`, `/model`, `/gaps`).

Static files only, public like the console (they hold no data): each page reads and changes everything
through the `/admin/...` routes with the staff member's token, so the admin gate stays the one place
that decides who may do what. Review uses `/admin/review` (adapters/http/review_admin.py); Model uses
`/admin/model...` (adapters/http/model_admin.py, admins); Gaps uses `/admin/topics` and
`/admin/kb/entries` (adapters/http/topics_admin.py: agents list and draft, admins approve). Mounted by
app.py before the console's own `/console/{name}` route, which would otherwise answer 404 for these
names, and served with the console's security headers (no inline script or style on any page).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from adapters.http.desk_page import HEADERS

pages = APIRouter(tags=["console"], include_in_schema=False)

STATIC = Path(__file__).resolve().parents[1] / "static"
MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# Page -> its files under adapters/static; `/console/<page>` serves `<page>.html`, `/console/<file>` the others.
# Only these: no path from the URL reaches the file system.
PAGES = {"review": ("review.html", "review.js", "review.css"),
         "model": ("model.html", "model.js", "model.css"),
         "gaps": ("gaps.html", "gaps.js", "gaps.css")}


def _page_route(url_name: str, file_name: str) -> None:
    media_type = MEDIA_TYPES[Path(file_name).suffix]

    async def serve() -> FileResponse:
        return FileResponse(STATIC / file_name, media_type=media_type, headers=HEADERS)

    pages.add_api_route(f"/console/{url_name}", serve, methods=["GET"], name=f"staff_page_{url_name}")


for _page, _files in PAGES.items():
    for _file in _files:
        _page_route(_page if _file == f"{_page}.html" else _file, _file)
