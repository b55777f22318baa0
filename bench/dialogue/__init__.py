"""End-to-end dialogue benchmark, `python -m bench.dialogue` (run.py; data.py, harness.py, report.py).
The held-out demo-store questions are in cases/."""
