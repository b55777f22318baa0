"""The 422 answer for a request FastAPI could not validate, made safe for any input.

FastAPI's default handler echoes each offending `input` back with `JSONResponse`, which
refuses some of what Python's JSON parser accepts: `NaN`/`Infinity` (not valid JSON out),
lone surrogates such as `"\\ud800"` (not encodable as UTF-8) and, through the recursive
`jsonable_encoder`, inputs nested a few hundred levels deep. Each of those turned a bad
request into a 500. This handler keeps FastAPI's shape (`{"detail": [{"type", "loc",
"msg", "input", ...}]}`) but makes every value printable: non-finite numbers become their
name as a string, surrogates become U+FFFD, and echoed inputs are cut off in depth and
length (the client sent them; it needs the location and the reason, not its body back).
"""

from __future__ import annotations

import math
import re

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_DEPTH = 8  # levels of an echoed input kept before "..." stands in
MAX_TEXT = 200  # characters of an echoed string kept
MAX_ITEMS = 20  # items of an echoed list or object kept
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # paired ones are already one character in a Python str


def _text(value: str) -> str:
    """`value` encodable as UTF-8 (lone surrogates replaced) and at most MAX_TEXT characters."""
    if len(value) > MAX_TEXT:
        value = value[:MAX_TEXT] + "..."
    return value if value.isascii() else LONE_SURROGATE.sub("\ufffd", value)


def safe(value: object, depth: int = 0) -> object:
    """`value` as plain JSON that `JSONResponse` can always render (see the module docstring)."""
    if depth > MAX_DEPTH:
        return "..."
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # "nan", "inf", "-inf"
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        items = list(value.items())[:MAX_ITEMS]
        return {_text(str(k)): safe(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [safe(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    if isinstance(value, bytes):
        return _text(value.decode("utf-8", "replace"))
    return _text(str(value))  # exceptions in `ctx`, and anything else pydantic puts there


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with every validation error, located (`loc`) and explained (`msg`)."""
    errors = []
    for error in exc.errors():
        entry = {key: safe(error[key]) for key in ("type", "loc", "msg") if key in error}
        if "input" in error:
            entry["input"] = safe(error["input"], depth=1)
        if error.get("ctx"):
            entry["ctx"] = safe(error["ctx"], depth=1)
        errors.append(entry)
    return JSONResponse({"detail": errors}, status_code=422)
