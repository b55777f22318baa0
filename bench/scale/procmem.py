"""Reading a process's memory from /proc: smaps_rollup's totals and smaps's mappings grouped by what they hold.

RSS counts every resident page; PSS divides each shared page among the processes mapping it (so the PSS of all
processes adds up to the memory really used); USS is the private pages (Private_Clean + Private_Dirty), what
stopping the process would free; shared is Shared_Clean + Shared_Dirty. Standard library only, so a probe
process (bench.scale.steps) can read its own figures without loading anything that would move them.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path


def rollup(pid: int) -> dict[str, float]:
    """MB from /proc/PID/smaps_rollup, and the peak RSS (VmHWM) from status."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        fields[key] = int(value.split()[0])
    peak = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmHWM:"))
    mb = 1024.0
    return {"rss_mb": fields["Rss"] / mb, "pss_mb": fields["Pss"] / mb,
            "uss_mb": (fields["Private_Clean"] + fields["Private_Dirty"]) / mb,
            "shared_mb": (fields["Shared_Clean"] + fields["Shared_Dirty"]) / mb,
            "anon_mb": fields.get("Anonymous", 0) / mb, "peak_rss_mb": peak / mb}


_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$")


def category(path: str) -> str:
    """Which kind of memory a mapping is, for saying what a worker's memory is made of."""
    if path in ("", "[heap]") or path.startswith("[anon"):
        return "private heap and anonymous memory (Python objects, arrays, model weights read into memory)"
    if path.endswith(".safetensors"):
        return "weight files mapped read-only (" + Path(path).parent.parent.name + ")"
    if path.endswith((".onnx", ".npy", ".bin")):
        return "other mapped data files"
    if "/torch/" in path:
        return "torch libraries"
    if "/onnxruntime/" in path:
        return "onnxruntime libraries"
    if ".so" in path:
        return "other shared libraries (numpy, faiss, tokenizers, Python, ...)"
    return "other mappings (stacks, vdso, ...)"


def breakdown(pid: int) -> dict[str, dict[str, float]]:
    """RSS, PSS, private and shared MB per `category`, from /proc/PID/smaps."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"rss_mb": 0.0, "pss_mb": 0.0, "uss_mb": 0.0,
                                                             "shared_mb": 0.0})
    files: dict[str, str] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        match = _MAPPING.match(line)
        if match:
            name = category(match.group(1))
            if match.group(1).endswith(".safetensors"):
                files[name] = match.group(1)
            continue
        key, _, value = line.partition(":")
        kb = value.split()[0] if value.split() else "0"
        target = {"Rss": "rss_mb", "Pss": "pss_mb", "Private_Clean": "uss_mb", "Private_Dirty": "uss_mb",
                  "Shared_Clean": "shared_mb", "Shared_Dirty": "shared_mb"}.get(key)
        if target and kb.isdigit():
            out[name][target] += int(kb) / 1024.0
    return {k: {m: round(v, 1) for m, v in row.items()} | ({"file": files[k]} if k in files else {})
            for k, row in sorted(out.items(), key=lambda kv: -kv[1]["rss_mb"])}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
