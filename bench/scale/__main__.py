"""`python -m bench.scale`: bench/scale/run.py."""

from bench.scale.run import main

if __name__ == "__main__":
    main()
