"""What every benchmark shares: the environment, where things are, and how a run names itself.

Imported by `bench/__init__.py`, so it runs before any benchmark module (and before any model library
reads the environment). Benchmarks run from the repository root as `python -m bench.<name>`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent  # the repository
# The public data sets, never copied into the repository: ../shared/data beside it, or FRONTDESK_BENCH_DATA.
DATA = Path(os.environ.get("FRONTDESK_BENCH_DATA", ROOT.parent / "shared" / "data"))
WORK = ROOT / "bench" / "results"  # git-ignored: trained models, FRONTDESK_HOMEs, logs, memory.json
REPORT_DATA = ROOT / "docs" / "benchmarks"  # per-part results (<name>.json) behind docs/BENCHMARKS.md


def require_data(path: Path = DATA) -> None:
    if not path.is_dir():
        raise SystemExit(f"benchmark data not found at {path} (set FRONTDESK_BENCH_DATA)")


def program() -> str:
    """How this process was started: `python -m bench.nlu` (or `python path/to/script.py`)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is not None and spec.name:
        return f"python -m {spec.name.removesuffix('.__main__')}"
    return "python " + shlex.quote(os.path.relpath(sys.argv[0], ROOT))


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line: its module docstring as the help, its `python -m` command as the usage."""
    return argparse.ArgumentParser(prog=program(), description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
