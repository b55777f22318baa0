"""`python -m bench.query_encoder`: bench/query_encoder/run.py."""

from bench.query_encoder.run import main

if __name__ == "__main__":
    main()
