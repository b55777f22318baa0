"""`python -m bench.topics`: bench/topics/run.py."""

from bench.topics.run import main

if __name__ == "__main__":
    main()
