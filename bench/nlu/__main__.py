"""`python -m bench.nlu`: bench/nlu/run.py."""

from bench.nlu.run import main

if __name__ == "__main__":
    main()
