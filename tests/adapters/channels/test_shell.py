"""`frontdesk shell`: the terminal channel runs the real bot core (model, FAQ, Redis) end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow

ROOT = REPO_ROOT


def test_shell_answers_from_the_faq_and_records_the_conversation(demo_model, redis_url, redis_prefix, tmp_path):
    env = {**os.environ, "FRONTDESK_MODEL_DIR": str(demo_model), "REDIS_URL": redis_url,
           "FRONTDESK_REDIS_PREFIX": redis_prefix, "FRONTDESK_KB": str(ROOT / "knowledge" / "demo"),
           "FRONTDESK_HOME": str(tmp_path), "FRONTDESK_DEVICE": "cpu", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "shell", "--user", "term-1"],
        input="hello\nhow much does standard shipping cost?\n/quit\n", capture_output=True, text=True,
        env=env, cwd=ROOT, timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert "$5.95" in done.stdout  # the FAQ's shipping answer, through the bot's policy
    import redis

    from bot.keys import Keys
    from bot.store import ConversationStore

    history = ConversationStore(redis.Redis.from_url(redis_url), Keys(redis_prefix)).history("shell:term-1")
    assert [e["role"] for e in history] == ["customer", "bot", "customer", "bot"]


def test_shell_without_a_model_fails_with_a_message_not_a_traceback(tmp_path, redis_url):
    env = {**os.environ, "FRONTDESK_MODEL_DIR": str(tmp_path / "missing"), "REDIS_URL": redis_url,
           "FRONTDESK_HOME": str(tmp_path), "FRONTDESK_DEVICE": "cpu"}
    done = subprocess.run([sys.executable, "-m", "adapters.cli", "shell"], input="hi\n", capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "missing" in done.stderr
