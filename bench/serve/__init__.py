"""Serving benchmark, `python -m bench.serve` (run.py). baselines.py is a server it starts
(`python -m bench.serve.baselines`); gpu.sh runs the `gpu` part on a CUDA machine."""
