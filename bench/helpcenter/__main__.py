"""`python -m bench.helpcenter`: bench/helpcenter/run.py."""

from bench.helpcenter.run import main

if __name__ == "__main__":
    main()
