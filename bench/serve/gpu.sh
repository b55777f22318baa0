#!/usr/bin/env bash
# The /predict serving benchmark on CUDA, for a session lent the GPU machine (one short run).
#
#   bash bench/serve/gpu.sh            # from the repository root, with the project installed
#
# Needs: the project's environment (.venv, or PYTHON=...), ../shared/data (BANKING77) and the
# BANKING77 model in bench/results/banking77 (python -m bench.nlu --parts banking, a minute or two
# on a GPU; without it bench.serve trains a one-epoch stand-in and says so in the report).
# Runs Frontdesk (FRONTDESK_DEVICE=cuda: PyTorch, half precision, micro-batching) and the naive
# pipeline on the same GPU at 1, 8 and 64 clients, and writes the `gpu` part of
# docs/benchmarks/serve.json and docs/BENCHMARKS.md. Where $OUT is set (the device machine's
# result folder), copies both there so they come back.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv || true
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'"
"$PYTHON" -m bench.serve --parts gpu "$@"
if [[ -n "${OUT:-}" ]]; then
  cp docs/benchmarks/serve.json docs/BENCHMARKS.md "$OUT"/
  cp bench/results/serve-*.log "$OUT"/ 2>/dev/null || true
fi
