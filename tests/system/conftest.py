"""Everything under tests/system is marked `system`: several processes, processes killed and restarted,
Redis Cluster and Sentinel, the deployment tools. `make test-fast` leaves them out; `make test` runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # A conftest hook sees every collected item, not only this folder's: mark only the ones under it.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.system)
