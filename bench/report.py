"""Writing benchmark results into docs/BENCHMARKS.md, one section per benchmark script.

Each script owns the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`, so
running one benchmark never erases another's results.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path

from bench._setup import ROOT, program

BENCHMARKS = ROOT / "docs" / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEach section is written by the script named in it; numbers are from the run shown.\n"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {gpu}, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def command() -> str:
    return " ".join([program(), *(shlex.quote(a) for a in sys.argv[1:])])


def part_stamp() -> dict:
    """Stored with each part's results, so a report assembled from several runs names each one."""
    return {"command": command(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def runs_summary(results: dict) -> str:
    """'Command ... (parts: a, b)' lines for every distinct run behind the results."""
    runs: dict[tuple[str, str], list[str]] = {}
    for part, value in results.items():
        stamp = value.get("_run") if isinstance(value, dict) else None
        if stamp:
            runs.setdefault((stamp["command"], stamp["date"]), []).append(part)
    lines = [f"- `{cmd}` at {date}: {', '.join(parts)}" for (cmd, date), parts in sorted(runs.items(),
                                                                                           key=lambda kv: kv[0][1])]
    return ("Runs behind these numbers (same machine, same splits and seeds):\n" + "\n".join(lines) + "\n"
            if lines else "")


def run_stamp() -> str:
    return (f"Written by: `{command()}`  \nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  \n"
            f"Machine: {machine()}\n")


def table(headers: list[str], rows: list[list]) -> str:
    def fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_section(name: str, markdown: str) -> Path:
    BENCHMARKS.parent.mkdir(parents=True, exist_ok=True)
    text = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else HEADER
    block = f"<!-- bench:{name} -->\n{markdown.rstrip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text, encoding="utf-8")
    return BENCHMARKS
