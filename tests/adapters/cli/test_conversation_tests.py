"""`frontdesk test`: the demo's shipped conversation tests pass locally and against a live server; a failing step
is named with what was expected and what came back; a malformed file is exit 2 with `file:line: message`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from tests.support.paths import REPO_ROOT

SHIPPED = REPO_ROOT / "tests" / "conversations" / "demo.yaml"
CHAT_TOKEN = "c" * 40
ADMIN_TOKEN = "a" * 40


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """One FRONTDESK_HOME for the module: the knowledge base's embeddings cache is built once."""
    return tmp_path_factory.mktemp("conversation-tests-home")


def frontdesk_test(args: list[str], demo_model: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FRONTDESK_MODEL_DIR": str(demo_model), "FRONTDESK_HOME": str(home),
           "FRONTDESK_KB": str(REPO_ROOT / "knowledge" / "demo"), "FRONTDESK_DEVICE": "cpu", "COLUMNS": "200"}
    for name in ("REDIS_URL", "FRONTDESK_CHAT_TOKEN", "FRONTDESK_ADMIN_TOKEN"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "adapters.cli", "test", *args], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=400)


def test_the_shipped_demo_tests_pass_locally_with_json_and_junit(demo_model, home, tmp_path):
    junit = tmp_path / "out" / "junit.xml"
    done = frontdesk_test([str(SHIPPED), "--json", "--junit", str(junit)], demo_model, home)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] and report["failed"] == 0 and report["total"] == len(report["tests"]) >= 8
    handoff = next(t for t in report["tests"] if t["name"] == "hand-off to staff and back")
    assert handoff["passed"] and handoff["steps_run"] == handoff["steps"] == 5
    suites = ET.parse(junit).getroot()
    assert suites.tag == "testsuites" and suites.get("failures") == "0"
    cases = suites.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == [t["name"] for t in report["tests"]]
    assert not suites.findall(".//failure")


FAILING = """\
- name: staff hand-off in yaml
  steps:
    - user: /human
      expect: {escalated: true}
    - staff: reply We're on it.
      expect: {escalated: true, reply_contains: on it}
    - staff: resolve
      expect: {handed_back: true, escalated: false, reply_contains: handed you back}
- name: delivery is answered wrongly
  steps:
    - user: hello
      expect: {intent: greet}
    - user: how long does delivery take?
      expect: {answer: gift-cards, escalated: false}
    - user: never reached
- name: claim with nothing to claim
  steps:
    - staff: claim
"""


def test_a_failing_step_is_named_with_what_was_expected_and_what_came_back(demo_model, home, tmp_path):
    tests = tmp_path / "failing.yaml"
    tests.write_text(FAILING)
    junit = tmp_path / "junit.xml"
    done = frontdesk_test([str(tests), "--junit", str(junit)], demo_model, home)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "PASS staff hand-off in yaml" in out
    assert "FAIL delivery is answered wrongly" in out
    assert "step 2 (user: how long does delivery take?): expected answer: gift-cards, got answered shipping-times" \
        in out
    assert "step 3" not in out  # a conversation stops at its first failing step
    assert "FAIL claim with nothing to claim" in out and "never handed to staff" in out
    assert "1 passed, 2 failed of 3" in out
    failures = {c.get("name"): c.find("failure") for c in ET.parse(junit).getroot().iter("testcase")}
    assert failures["staff hand-off in yaml"] is None
    assert "expected answer: gift-cards" in failures["delivery is answered wrongly"].get("message")


MALFORMED = [
    ("- name: x\n  steps:\n    - user: hi\n      expect: {answr: foo}\n", 4, "unknown key 'answr'"),
    ("- name: x\n  steps:\n    - user: hi\n    - expect: {declined: true}\n", 4, "exactly one of"),
    ("- name: x\n  steps:\n    - user: hi\n      expect:\n        declined: maybe\n", 5, "true or false"),
    ("- name: x\n  steps:\n    - user: hi\n      expect: {reply_matches: '(unclosed'}\n", 4, "regular expression"),
    ("- name: x\n  steps:\n    - staff: dance\n", 3, "not claim, resolve or reply"),
    ("- name: x\n  steps:\n    - staff: claim\n      expect: {intent: greet}\n", 4, "not checked on a staff step"),
    ("- name: x\n  steps: []\n", 2, "non-empty list"),
    ("- name: x\n  steps:\n    - user: [a, b]\n", 3, "single value"),
    ("- name: x\n  steps:\n    - user: hi\n  - broken: [\n", 4, "not valid YAML"),
    ("name: x\n", 1, "list of conversations"),
]


@pytest.mark.parametrize(("text", "line", "message"), MALFORMED)
def test_a_malformed_file_is_exit_2_with_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["test", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:{line}: " in result.output and message in result.output


def test_a_missing_path_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["test", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "no such file or folder" in result.output


def test_the_shipped_tests_pass_against_a_live_server(demo_model, redis_url, redis_prefix, tmp_path, monkeypatch):
    from adapters.runtime.settings import Settings
    from tests.support.liveserver import live_app

    settings = Settings(FRONTDESK_MODEL_DIR=demo_model, REDIS_URL=redis_url, FRONTDESK_REDIS_PREFIX=redis_prefix,
                        FRONTDESK_ADMIN_TOKEN=ADMIN_TOKEN, FRONTDESK_CHAT_TOKEN=CHAT_TOKEN, FRONTDESK_HOME=tmp_path,
                        FRONTDESK_KB=REPO_ROOT / "knowledge" / "demo", FRONTDESK_DEVICE="cpu")
    monkeypatch.setenv("FRONTDESK_CHAT_TOKEN", CHAT_TOKEN)
    monkeypatch.setenv("FRONTDESK_ADMIN_TOKEN", ADMIN_TOKEN)
    junit = tmp_path / "remote.xml"
    with live_app(settings) as url:
        result = CliRunner().invoke(app, ["test", str(SHIPPED), "--url", url, "--json", "--junit", str(junit)])
        assert result.exit_code == 0, result.output
        monkeypatch.delenv("FRONTDESK_CHAT_TOKEN")
        monkeypatch.delenv("FRONTDESK_ADMIN_TOKEN")
        refused = CliRunner().invoke(app, ["test", str(SHIPPED), "--url", url])
    assert refused.exit_code == 2 and "FRONTDESK_CHAT_TOKEN" in refused.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["passed"] and report["where"] == url
    assert ET.parse(junit).getroot().get("failures") == "0"
