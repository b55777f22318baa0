"""The contract's CLI commands, run in-process through typer."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app

runner = CliRunner()


def test_evaluate_json_reports_contract_fields(tiny_model, tiny_data):
    result = runner.invoke(app, ["evaluate", "--model", str(tiny_model), "--intents", str(tiny_data[0]), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 24
    for key in ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall"):
        assert 0.0 <= report[key] <= 1.0
    assert report["accuracy"] > 0.5


def test_evaluate_sentiment_json(tiny_model, tiny_data, tmp_path):
    plots = tmp_path / "plots"
    result = runner.invoke(app, ["evaluate", "--model", str(tiny_model), "--sentiment", str(tiny_data[1]),
                                 "--json", "--plots", str(plots)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 15 and "in_scope_accuracy" not in report
    assert (plots / "sentiment_confusion.png").is_file()
    assert (plots / "sentiment_confidence.png").is_file()


def test_predict_json_one_line_per_text(tiny_model):
    result = runner.invoke(app, ["predict", "--model", str(tiny_model), "--json", "hello there", "refund now"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in lines] == ["hello there", "refund now"]
    for r in lines:
        assert {"intent", "confidence", "out_of_scope", "sentiment", "sentiment_scores"} <= set(r)


def test_train_rejects_bad_csv_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,intent\nhello,greet\n,greet\nhi,greet\n")
    result = runner.invoke(app, ["train", "--intents", str(bad), "--out", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert f"{bad}:3: empty text" in result.output
    assert not (tmp_path / "m").exists()


def test_train_cli_end_to_end(tiny_data, tmp_path):
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--intents", str(tiny_data[0]), "--sentiment", str(tiny_data[1]),
                                 "--out", str(out), "--epochs", "1", "--max-steps", "2", "--seed", "5",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()


def test_missing_model_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["predict", "--model", str(tmp_path / "nope"), "hi"])
    assert result.exit_code == 1
    assert "does not exist" in result.output


@pytest.mark.slow
def test_tune_runs_trials_and_saves_the_best(tiny_data, tmp_path):
    out = tmp_path / "best"
    # Two steps a trial: this checks the search wiring, not the optimum.
    result = runner.invoke(app, ["tune", "--intents", str(tiny_data[0]), "--sentiment", str(tiny_data[1]),
                                 "--out", str(out), "--trials", "2", "--epochs", "3", "--device", "cpu",
                                 "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.count("trial ") >= 2 and "best configuration" in result.output
    assert (out / "model.safetensors").is_file()
