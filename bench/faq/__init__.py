"""FAQ retrieval benchmark, `python -m bench.faq` (run.py; cv.py for the stackfaq-cv part)."""
