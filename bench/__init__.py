"""Frontdesk's benchmarks, run from the repository root (docs/BENCHMARKS.md lists them):

    python -m bench.nlu        python -m bench.faq          python -m bench.serve     python -m bench.load
    python -m bench.dialogue   python -m bench.helpcenter   python -m bench.deploy    python -m bench.memory

Importing the package applies the shared set-up first (bench/_setup.py: environment, paths), so it is in
place before any benchmark module loads a model library.
"""

from bench import _setup  # noqa: F401
