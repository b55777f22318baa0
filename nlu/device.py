"""Which torch device a model runs on: the one choice training and serving both make."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; expected auto, cpu or cuda")
    return torch.device(device)
