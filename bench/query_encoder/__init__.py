"""Query encoders against the retrieval encoder, `python -m bench.query_encoder` (run.py)."""
