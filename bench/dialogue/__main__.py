"""`python -m bench.dialogue`: bench/dialogue/run.py."""

from bench.dialogue.run import main

if __name__ == "__main__":
    main()
