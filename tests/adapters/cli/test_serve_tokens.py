"""`frontdesk serve` and `run` refuse a guessable bearer token, naming the variable without showing it.

A placeholder copied from an example (`change-me`) or a short token would guard every customer's data
with something anyone can guess; the refusal comes before Redis, the model or a port is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.serverutil import ROOT


@pytest.mark.parametrize(("command", "variable", "value", "reason"), [
    ("serve", "FRONTDESK_ADMIN_TOKEN", "change-me", "placeholder"),
    ("serve", "FRONTDESK_ADMIN_TOKEN", "k3Y-9x_Qz1", "at least 32"),
    ("serve", "FRONTDESK_CHAT_TOKEN", "Change-Me-Please-0123456789abcdefXYZ", "placeholder"),
    ("run", "FRONTDESK_ADMIN_TOKEN", "change-me", "placeholder"),
])
def test_serve_exits_naming_the_variable_and_never_printing_the_value(command, variable, value, reason, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_") and k != "REDIS_URL"}
    env.update({"HF_HUB_OFFLINE": "1", "FRONTDESK_HOME": str(tmp_path), variable: value})
    done = subprocess.run([sys.executable, "-m", "adapters.cli", command, "--port", "9"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert variable in done.stderr and reason in done.stderr, done.stderr
    assert value not in output and value.lower() not in output.lower()
    assert "Traceback" not in output
    assert not (tmp_path / "redis").exists()  # refused before anything started
