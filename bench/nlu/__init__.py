"""NLU benchmark, `python -m bench.nlu` (run.py; distill.py for the distill-* parts)."""
