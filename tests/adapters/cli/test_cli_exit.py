"""Exit codes (0 success, 1 failure, 2 usage error), `--version`, and `--json` output a script can parse."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.runtime.settings import Settings
from tests.support.liveserver import live_app
from tests.support.serverutil import ROOT

runner = CliRunner()
KB = [{"id": "hours", "question": "When are you open?", "answer": "9 to 5.", "alternates": ["opening hours"]},
      {"id": "returns", "question": "How do I return an item?", "answer": "Within 30 days.",
       "alternates": ["send something back"]}]


def test_version_from_the_installed_command():
    frontdesk = Path(sys.executable).parent / "frontdesk"  # the console script `pip install -e .` made
    command = [str(frontdesk)] if frontdesk.is_file() else [sys.executable, "-m", "adapters.cli"]
    done = subprocess.run([*command, "--version"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"frontdesk {version('frontdesk')}"


@pytest.mark.parametrize("args", [
    ["--no-such-option"],
    ["no-such-command"],
    ["train", "--intents", "x.csv"],  # --out is required
    ["faq", "search", "--index", "i", "--top-k", "zero", "q"],
    ["evaluate", "--model", "m"],  # neither --intents nor --sentiment: click cannot see that one
    ["export", "--model", "m", "--out", "o", "--quantize", "int4"],
])
def test_usage_errors_exit_2(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output


def test_failures_exit_1_with_one_line_and_no_traceback(tmp_path):
    missing_model = runner.invoke(app, ["predict", "--model", str(tmp_path / "nope"), "hi"])
    assert missing_model.exit_code == 1 and "does not exist" in missing_model.stderr
    bad_kb = tmp_path / "faq.yaml"
    bad_kb.write_text(yaml.safe_dump([{"id": "a", "question": "q?"}]))
    invalid = runner.invoke(app, ["faq", "build", "--kb", str(bad_kb), "--out", str(tmp_path / "i"), "--json"])
    assert invalid.exit_code == 1 and f"{bad_kb}:1: missing answer" in invalid.stderr and invalid.stdout == ""
    unreachable = runner.invoke(app, ["faq", "reload", "--url", "http://127.0.0.1:9"],
                                env={"FRONTDESK_ADMIN_TOKEN": "t" * 32})
    assert unreachable.exit_code == 1 and "cannot reach http://127.0.0.1:9" in unreachable.stderr
    no_token = runner.invoke(app, ["faq", "reload"], env={"FRONTDESK_ADMIN_TOKEN": "",
                                                          "FRONTDESK_HOME": str(tmp_path / "home")})
    assert no_token.exit_code == 1 and "FRONTDESK_ADMIN_TOKEN is not set" in no_token.stderr
    # An error no command catches (here the OS refusing a folder under a file) is still one line and exit 1.
    good_kb = tmp_path / "good.yaml"
    good_kb.write_text(yaml.safe_dump(KB))
    (tmp_path / "a-file").write_text("")
    blocked = runner.invoke(app, ["faq", "build", "--kb", str(good_kb), "--out", str(tmp_path / "a-file" / "i")])
    assert blocked.exit_code == 1, blocked.output
    last = blocked.stderr.strip().splitlines()[-1]  # after the encoder's loading progress
    assert last.startswith("error: NotADirectoryError") and str(tmp_path / "a-file") in last
    assert "Traceback" not in blocked.output


def test_sub_commands_added_with_add_typer_follow_the_same_rule():
    """What the `model`, `review` and `staff` modules do: one `add_typer` line each; no handling of their own."""
    probe = typer.Typer()

    @probe.command("down")
    def down() -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    @probe.command("fine")
    def fine() -> None:
        typer.echo("ok")

    groups = len(app.registered_groups)
    app.add_typer(probe, name=f"probe-{uuid.uuid4().hex[:6]}")
    try:
        name = app.registered_groups[-1].name
        failed = runner.invoke(app, [name, "down"])
        assert failed.exit_code == 1
        assert failed.stderr == "error: ConnectionRefusedError: [Errno 111] Connection refused\n"
        assert runner.invoke(app, [name, "fine"]).exit_code == 0
        assert runner.invoke(app, [name, "fine", "--bogus"]).exit_code == 2
    finally:
        del app.registered_groups[groups:]
    for group in app.registered_groups:  # every registered group still answers --help
        assert runner.invoke(app, [group.name, "--help"]).exit_code == 0, group.name


@pytest.mark.slow
def test_train_and_export_json(tiny_data, tiny_model, tmp_path):
    trained = runner.invoke(app, ["train", "--intents", str(tiny_data[0]), "--sentiment", str(tiny_data[1]),
                                  "--out", str(tmp_path / "m"), "--epochs", "1", "--max-steps", "2",
                                  "--device", "cpu", "--json"])
    assert trained.exit_code == 0, trained.output
    report = json.loads(trained.stdout)  # the whole of stdout is one JSON object; progress went to stderr
    assert report["out"] == str(tmp_path / "m") and 0 <= report["dev"]["intent"]["accuracy"] <= 1
    exported = runner.invoke(app, ["export", "--model", str(tiny_model), "--out", str(tmp_path / "onnx"), "--json"])
    assert exported.exit_code == 0, exported.output
    summary = json.loads(exported.stdout)
    assert Path(summary["onnx"]).is_file() and summary["quantize"] is None


def test_faq_build_and_reload_json(tiny_model, redis_url, redis_prefix, tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "faq.yaml").write_text(yaml.safe_dump(KB))
    built = runner.invoke(app, ["faq", "build", "--kb", str(kb), "--out", str(tmp_path / "index"), "--json"])
    assert built.exit_code == 0, built.output
    index = json.loads(built.stdout)
    assert index["entries"] == 2 and index["version"]["version"] and index["answer_rule"]["answer"] > 0

    home = tmp_path / "home"
    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=redis_url, FRONTDESK_REDIS_PREFIX=redis_prefix,
                        FRONTDESK_HOME=home, FRONTDESK_DEVICE="cpu", FRONTDESK_KB=kb,
                        FRONTDESK_ADMIN_TOKEN="reload-token-0123456789abcdef0123456789")
    with live_app(settings) as url:
        (kb / "more.yaml").write_text(yaml.safe_dump([{"id": "ship", "question": "Do you ship abroad?",
                                                       "answer": "Yes."}]))
        reloaded = runner.invoke(app, ["faq", "reload", "--url", url, "--json"],
                                 env={"FRONTDESK_ADMIN_TOKEN": "reload-token-0123456789abcdef0123456789"})
        assert reloaded.exit_code == 0, reloaded.output
        body = json.loads(reloaded.stdout)
        assert body["ok"] is True and body["changed"] is True and body["version"]["entries"] == 3
        # After `frontdesk run` the token is in FRONTDESK_HOME/admin-token: a second terminal needs no variable.
        home.mkdir(exist_ok=True)
        (home / "admin-token").write_text("reload-token-0123456789abcdef0123456789\n")
        (kb / "broken.yaml").write_text(yaml.safe_dump([{"id": "x", "question": "no answer?"}]))
        rejected = runner.invoke(app, ["faq", "reload", "--url", url, "--json"],
                                 env={"FRONTDESK_ADMIN_TOKEN": "", "FRONTDESK_HOME": str(home)})
        assert rejected.exit_code == 1, rejected.output
        body = json.loads(rejected.stdout)
        assert body["ok"] is False and any("missing answer" in e["message"] for e in body["errors"])
