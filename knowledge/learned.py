"""`learned.yaml`: FAQ entries the team approved from what customers asked (topics of unanswered messages).

The file sits in the knowledge folder (beside the FAQ file when FRONTDESK_KB names a single file)
and is read like any FAQ file. Frontdesk writes it: every worker writes the fleet's approved
entries into its own copy before it reloads (`write_learned`), so a worker on another machine
serves them too. Rule: the file is written only when what it would hold changed, atomically (a
temporary file renamed over it), so a reload never reads half of it. An approved entry is removed
through the admin API, not by editing the file, which the next reload would write again.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import yaml

from knowledge.sources import LEARNED_FILE

HEADER = ("# Written by Frontdesk: FAQ entries approved from the topics of unanswered questions\n"
          "# (POST /admin/kb/entries). Do not edit: the next reload writes it again from what was approved.\n")


def learned_path(source: str | Path) -> Path:
    """Where the knowledge base at `source` keeps its learned entries."""
    source = Path(source)
    return source / LEARNED_FILE if source.is_dir() else source.with_name(LEARNED_FILE)


def render(entries: list[dict]) -> str:
    if not entries:
        return HEADER + "[]\n"
    return HEADER + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=1000)


def write_learned(path: Path, entries: list[dict]) -> bool:
    """Write `entries` to `path` when that changes it; True when written. No entries and no file: nothing."""
    text = render(entries)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        if not entries:
            return False
    handle, temporary = tempfile.mkstemp(prefix=".learned-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return True
