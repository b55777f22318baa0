"""Steady-load benchmark, `python -m bench.load` (run.py). loadgen.py: the load generator and
server-process helpers, also used by the serve and deploy benchmarks."""
