"""Scale benchmark, `python -m bench.scale` (run.py): search at 100k and 1M passages (search.py), worker memory and
cold start of `frontdesk serve` on the demo and a 1,000-article help center (memory.py, servers.py, procmem.py,
steps.py, helpcenter.py); report.py renders the `scale` section of docs/BENCHMARKS.md."""
