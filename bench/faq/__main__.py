"""`python -m bench.faq`: bench/faq/run.py."""

from bench.faq.run import main

if __name__ == "__main__":
    main()
