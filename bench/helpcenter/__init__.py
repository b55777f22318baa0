"""Help-center benchmark, `python -m bench.helpcenter` (run.py). The held-out questions are in cases/."""
