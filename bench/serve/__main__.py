"""`python -m bench.serve`: bench/serve/run.py."""

from bench.serve.run import main

if __name__ == "__main__":
    main()
