"""`learned.yaml`: FAQ entries the team approved from what customers asked (topics of unanswered messages).

The file sits in the knowledge folder (beside the FAQ file when FRONTDESK_KB names a single file)
and is read like any FAQ file. Frontdesk writes it: every worker writes the fleet's approved
entries into its own copy before it reloads (`write_learned`), so a worker on another machine
serves them too. Rule: the file is written only when what it would hold changed, atomically (a
temporary file renamed over it), so a reload never reads half of it, and removed when no entry is
approved; a learned.yaml Frontdesk did not write (without its header) is never touched.
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
    return HEADER + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=1000)


def write_learned(path: Path, entries: list[dict]) -> bool:
    """Make `path` hold `entries` when that changes it; True when it changed. A file Frontdesk did not write (it
    lacks the header) is never touched: `LearnedFileTaken`. No entries: our file is removed."""
    try:
        current: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if current is not None and not current.startswith(HEADER):
        raise LearnedFileTaken(f"{path} was not written by Frontdesk; approved entries are not written over it "
                               "(rename it)")
    if not entries:
        if current is None:
            return False
        path.unlink()
        return True
    text = render(entries)
    if current == text:
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


class LearnedFileTaken(RuntimeError):
    """A learned.yaml someone else wrote: Frontdesk leaves it as it is."""
