"""Models and server processes for bench.serve: what each benchmarked server runs with.

Every server gets its own environment (nothing inherited that could switch a chat platform
on), FRONTDESK_HOME under bench/results, the demo FAQ, and a free port on 127.0.0.1.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from bench._setup import ROOT, WORK
from bench.load import loadgen
from bench.nlu.run import banking_split

HOME = WORK / "serve-home"  # the servers' FRONTDESK_HOME: embedded Redis, FAQ embedding cache


def banking_model() -> tuple[Path, str]:
    """The BANKING77 model bench.nlu trained, or (said in the report) a one-epoch stand-in."""
    path = WORK / "banking77"
    if (path / "model.safetensors").exists():
        return path, "bench/results/banking77 (python -m bench.nlu --parts banking)"
    from nlu.data import read_labelled_csv
    from nlu.fit import fit
    from nlu.train import TrainConfig

    path = WORK / "banking77-serve"
    if not (path / "model.safetensors").exists():
        print("no bench/results/banking77: training a one-epoch BANKING77 model for the serving benchmark", flush=True)
        fit(banking_split()[0], read_labelled_csv(ROOT / "nlu" / "demo" / "sentiment.csv", "sentiment"), path,
            TrainConfig(epochs=1, device="cpu", seed=2024))
    return path, "bench/results/banking77-serve (one epoch: bench/results/banking77 was absent)"


def compressed_model(layers: int | None = None) -> tuple[Path, str]:
    """The default the product serves, applied to BANKING77: the distilled student (as many layers as
    `frontdesk run`'s demo model, FRONTDESK_DEMO_LAYERS, unless `layers` says otherwise) exported to int8,
    made by bench.nlu's distill-banking part."""
    from adapters.runtime.settings import Settings
    from bench.nlu.distill import student_dir

    layers = layers or Settings().demo_layers
    path = student_dir("banking", layers, int8=True)
    if not (path / "model.onnx").exists():
        raise SystemExit(f"{path} is missing: run `python -m bench.nlu --parts distill-banking` first")
    return path, f"bench/results/{path.name} (python -m bench.nlu --parts distill-banking: {layers} layers, int8)"


def onnx_model(quantize: str | None) -> Path:
    """`frontdesk export` of the BANKING77 model (int8 or fp32), made once per version of the export."""
    import json

    from nlu.export import EXPORT_INFO, ONNX_FILE, export_onnx

    out = WORK / ("banking77-int8" if quantize else "banking77-onnx-fp32")
    info = out / EXPORT_INFO
    current = (out / ONNX_FILE).exists() and info.exists() and "fused" in json.loads(info.read_text())
    if not current:  # absent, or from before exports were fused
        export_onnx(banking_model()[0], out, quantize)
    return out


def demo_model() -> Path:
    """`frontdesk run`'s demo model under the repository's .frontdesk, trained the way run trains it."""
    from adapters.runtime.demo_model import ensure_demo_model
    from adapters.runtime.settings import Settings

    return ensure_demo_model(Settings(FRONTDESK_HOME=str(ROOT / ".frontdesk")))


# The REST channel's token for the servers benchmarked here, and the header its callers send.
CHAT_TOKEN = secrets.token_urlsafe(32)
CHAT_AUTH = {"Authorization": f"Bearer {CHAT_TOKEN}"}


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmarked server: nothing inherited that could switch a channel on."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FRONTDESK_", "SLACK_", "TELEGRAM_", "REDIS_"))}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", FRONTDESK_HOME=str(HOME),
               FRONTDESK_KB=str(ROOT / "knowledge" / "demo"), FRONTDESK_ADMIN_TOKEN=secrets.token_urlsafe(32),
               FRONTDESK_CHAT_TOKEN=CHAT_TOKEN,  # the chat part's callers send it (POST /chat needs one)
               REDIS_URL="")  # empty: `serve` starts an embedded Redis under FRONTDESK_HOME
    env.update(extra)
    return env


def frontdesk_cmd(port: int, workers: int = 1) -> list[str]:
    return [sys.executable, "-c", "from adapters.cli.main import main; main()", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers)]


def start_frontdesk(name: str, env: dict[str, str], workers: int = 1) -> tuple:
    port = loadgen.free_port()
    process = loadgen.start(frontdesk_cmd(port, workers), env, WORK / f"serve-{name}.log", ROOT)
    base = f"http://127.0.0.1:{port}"
    try:  # /readyz: model, FAQ index and Redis all loaded, so nothing loads during the measurement
        loadgen.wait_http(f"{base}/readyz", process, consecutive=10 * workers)
    except Exception:
        loadgen.stop(process)
        raise
    return process, base


def start_baseline(mode: str, device: str = "cpu") -> tuple:
    port = loadgen.free_port()
    cmd = [sys.executable, "-m", "bench.serve.baselines", "--mode", mode, "--port", str(port),
           "--device", device]
    process = loadgen.start(cmd, server_env(), WORK / f"serve-{mode}.log", ROOT)
    base = f"http://127.0.0.1:{port}"
    loadgen.wait_http(f"{base}/healthz", process)
    return process, base
