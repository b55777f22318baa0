"""Where a /predict server spends its CPU under load (used by bench.serve's `profile` part).

Two measurements: py-spy samples the running server's threads (wall-clock stacks of every
non-idle thread, grouped by the library the innermost recognised frame belongs to), and the
engine alone, driven by the same 64 concurrent one-sentence callers without HTTP, gives the
ceiling the HTTP layer is measured against.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from bench._setup import ROOT
from bench.load.loadgen import summarise

# Innermost matching frame decides; the order matters only within one frame's file name.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tokenizer", ("/tokenizers/", "/transformers/tokenization")),
    ("model", ("/torch/", "/onnxruntime/", "/transformers/", "nlu/onnx_backend.py")),
    ("JSON", ("/json/", "orjson", "/fastapi/encoders.py")),
    ("HTTP/ASGI", ("/uvicorn/", "/starlette/", "/fastapi/", "/pydantic", "/h11/", "/httptools/", "/anyio/",
                   "/asyncio/", "/uvloop/", "/prometheus_client/", "adapters/http/app.py",
                   "adapters/runtime/metrics.py")),
    ("other", ("/nlu/", "/adapters/", "/bot/", "/knowledge/", "dataclasses.py", "copy.py", "/numpy/",
               "/concurrent/", "threading.py", "queue.py")),
)


def frame_file(frame: str) -> str:
    """`func (path)` as py-spy writes it with --nolineno -> path."""
    return frame[frame.rfind("(") + 1 : -1] if frame.endswith(")") else frame


# Innermost frames of threads blocked outside Python that py-spy's idle filter still counts as active.
WAITING = ("Condition.wait", "Event.wait", "._read_from_socket", "select", "Queue.get")


def category(stack: list[str]) -> tuple[str, str]:
    """(part, the frame that decided it) for one sampled stack, innermost frame first."""
    if stack and stack[-1].partition(" (")[0].endswith(WAITING):
        return "waiting (blocked threads)", stack[-1]
    for frame in reversed(stack):
        path = frame_file(frame)
        for name, markers in CATEGORIES:
            if any(marker in path for marker in markers):
                return name, frame
    return "other", stack[-1] if stack else ""


def relative(path: str) -> str:
    """A file name without the interpreter's or the repository's prefix."""
    for anchor in ("site-packages/", "python3.11/", f"{ROOT}/"):
        if anchor in path:
            return path.split(anchor, 1)[1]
    return path


def short(frame: str) -> str:
    """`func (…/site-packages/pkg/mod.py)` -> `func (pkg/mod.py)`, for the report."""
    func, _, path = frame.partition(" (")
    return f"{func} ({relative(path.rstrip(')'))})"


def read_stacks(raw: Path) -> Iterator[tuple[list[str], int]]:
    """(frames outermost first, sample count) for each line of a py-spy collapsed-stack file."""
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if stack_text and count_text.isdigit():
            yield stack_text.split(";"), int(count_text)


def summarise_profile(raw: Path, top: int = 12) -> dict:
    """Shares of samples per part, the HTTP part by package, and the innermost frames that take most samples."""
    by_category: Counter[str] = Counter()
    http: Counter[str] = Counter()
    leaves: Counter[tuple[str, str]] = Counter()
    total = 0
    for stack, count in read_stacks(raw):
        kind, frame = category(stack)
        by_category[kind] += count
        if kind == "HTTP/ASGI":
            http[relative(frame_file(frame)).split("/")[0]] += count
        leaves[(short(stack[-1]), kind)] += count
        total += count
    return {
        "samples": total,
        "categories": {k: v / total for k, v in by_category.most_common()} if total else {},
        "http_by_package": {k: v / total for k, v in http.most_common()} if total else {},
        "top_frames": [{"frame": f, "category": k, "share": n / total} for (f, k), n in leaves.most_common(top)],
    }


# For /chat: which component a sampled stack is working for (first rule with a frame anywhere in the stack).
REDIS = ("Redis client, waiting for replies included", "/redis/")
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("FAQ query encoder (knowledge/embedder.py)", "knowledge/embedder.py"),
    ("FAQ index search and answer choice", "/knowledge/"),
    ("NLU engine (tokenizer, model, decision rule)", "/nlu/"),
    ("bot logic (bot/)", "/bot/"),
)


def summarise_components(raw: Path) -> dict:
    """Shares of samples per component (COMPONENTS), the rest being HTTP, threads and other plumbing."""
    shares: Counter[str] = Counter()
    total = 0
    for stack, count in read_stacks(raw):
        if any(REDIS[1] in f for f in stack):  # bot threads blocked on a reply are the Redis round trip's cost
            name = REDIS[0]
        elif stack[-1].partition(" (")[0].endswith(WAITING):
            name = "waiting (locks, queues, futures)"
        else:
            name = next((label for label, marker in COMPONENTS if any(marker in f for f in stack)),
                        "HTTP/ASGI, thread pool and other")
        shares[name] += count
        total += count
    return {"samples": total, "components": {k: v / total for k, v in shares.most_common()} if total else {}}


def profile_server(pid: int, load: Callable[[], dict], out: Path, seconds: float,
                   summary: Callable[[Path], dict] = summarise_profile) -> dict:
    """Run `load` while py-spy records the server `pid`; falls back to saying why it could not."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {"method": "engine without HTTP only (py-spy is not installed: pip install -e .[dev])",
                "http_during_profile": load()}
    out.unlink(missing_ok=True)
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "100",
           "--nonblocking", "--format", "raw", "--full-filenames", "--nolineno", "--output", str(out)]
    spy_process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    cell = load()
    output, _ = spy_process.communicate(timeout=seconds + 60)
    if spy_process.returncode != 0 or not out.exists():
        return {"method": "engine without HTTP only (py-spy could not attach)",
                "profiler_error": output.decode(errors="replace")[-500:], "http_during_profile": cell}
    return {"method": "py-spy record (100 Hz, non-blocking, active threads only)", "http_during_profile": cell,
            **summary(out)}


def engine_throughput(model_dir: Path, texts: list[str], concurrency: int, duration: float, warmup: float) -> dict:
    """The engine in this process with `concurrency` one-text callers in flight: no HTTP, no JSON.
    The better of two measuring windows."""
    from nlu.engine import load_engine

    engine = load_engine(model_dir, "cpu", backend="auto")

    async def drive() -> dict:
        latencies: list[float] = []
        counter = iter(range(10**12))
        window_start = time.perf_counter() + warmup
        window_end = window_start + duration

        async def worker() -> None:
            while time.perf_counter() < window_end:
                t = time.perf_counter()
                await engine.apredict([texts[next(counter) % len(texts)]])
                done = time.perf_counter()
                if t >= window_start and done <= window_end:
                    latencies.append(done - t)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return summarise(latencies, 0, duration)

    try:  # the better of two windows, as for the HTTP server it is compared with
        result = max((asyncio.run(drive()) for _ in range(2)), key=lambda r: r["rps"])
    finally:
        engine.close()
    return {"clients": concurrency, "texts_per_s": result.pop("rps"), **result}
