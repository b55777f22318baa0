"""`python -m bench.load`: bench/load/run.py."""

from bench.load.run import main

if __name__ == "__main__":
    main()
