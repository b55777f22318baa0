"""Texts labelled two ways are reported and resolved by a stated rule; broken files are still refused."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from nlu.data import DataError, load_labelled_csv
from tests.conftest import INTENT_ROWS, write_csv

runner = CliRunner()

CONFLICTING = (
    "text,sentiment\n"
    "the flight was late,negative\n"     # 2
    "great crew,positive\n"              # 3
    "The flight was LATE,neutral\n"      # 4: same text, other label
    "thanks a lot,positive\n"            # 5
    "ok,neutral\n"                       # 6
    "the flight was late,negative\n"     # 7: a third row: majority says negative
    "so bad,negative\n"                  # 8
    "fine,neutral\n"                     # 9
    "i love it,positive\n"               # 10
    "whatever,neutral\n"                 # 11
    "whatever,positive\n"                # 12: a tie
    "awful,negative\n"                   # 13
)


def test_each_rule_on_a_file_with_conflicts(tmp_path):
    path = tmp_path / "tweets.csv"
    path.write_text(CONFLICTING, encoding="utf-8")

    dropped = load_labelled_csv(path, "sentiment", on_conflict="drop")
    texts = [e.text.casefold() for e in dropped.examples]
    assert "the flight was late" not in texts and "whatever" not in texts
    assert dropped.summary() == {"file": str(path), "path": str(path.resolve()), "rule": "drop", "rows": 12,
                                 "examples": 7, "conflicting_texts": 2, "dropped_rows": 5, "relabelled_rows": 0}
    first, second = dropped.conflict_lines()
    assert first.startswith(f"{path}:2:") and "'negative'" in first and "'neutral' on line 4" in first
    assert "dropped" in first and second.startswith(f"{path}:11:") and "'positive' on line 12" in second

    majority = load_labelled_csv(path, "sentiment", on_conflict="majority")
    kept = {e.text.casefold(): e.label for e in majority.examples}
    assert kept["the flight was late"] == "negative" and "whatever" not in kept  # the tie is dropped
    assert majority.summary()["relabelled_rows"] == 1 and majority.summary()["dropped_rows"] == 2
    assert "kept 'negative'" in majority.conflict_lines()[0]

    with pytest.raises(DataError) as info:
        load_labelled_csv(path, "sentiment", on_conflict="error")
    assert {p.line for p in info.value.problems} == {4, 12}


def test_really_broken_files_are_refused_whatever_the_rule(tmp_path):
    for name, content, needle in (
        ("cols.csv", "utterance,sentiment\nhi,positive\n", "missing column"),
        ("empty.csv", "", "file is empty"),
        ("header.csv", "text,sentiment\n", "no data rows"),
        ("single.csv", "text,sentiment\na,x\nb,x\nc,lonely\n", "'lonely' has only 1"),
        # dropping the conflict leaves 'y' with one example: still refused, by name
        ("emptied.csv", "text,sentiment\na,x\nb,x\nc,y\nd,y\nd,x\n", "'y' has only 1"),
    ):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        with pytest.raises(DataError, match=needle):
            load_labelled_csv(path, "sentiment", on_conflict="drop")


@pytest.mark.slow
def test_train_goes_on_and_records_the_conflicts_and_evaluate_reports_both_accuracies(tiny_data, tmp_path):
    rows = {label: list(texts) for label, texts in INTENT_ROWS.items()}
    rows["refund"].append("where is my order")  # also an order_status text: a conflict
    intents = write_csv(tmp_path / "intents.csv", "intent", rows)
    refused = runner.invoke(app, ["train", "--intents", str(intents), "--sentiment", str(tiny_data[1]),
                                  "--out", str(tmp_path / "never"), "--on-conflict", "error", "--device", "cpu"])
    assert refused.exit_code != 0 and "where is my order" in refused.output and not (tmp_path / "never").exists()

    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--intents", str(intents), "--sentiment", str(tiny_data[1]),
                                 "--out", str(out), "--epochs", "1", "--max-steps", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"{intents}:2:" in result.output and "'refund' on line 14" in result.output
    data = json.loads((out / "metrics.json").read_text())["data"]
    assert data["intent"]["rule"] == "drop" and data["intent"]["conflicting_texts"] == 1
    assert data["intent"]["dropped_rows"] == 2 and data["sentiment"]["conflicting_texts"] == 0
    assert "closed_set_accuracy" in json.loads((out / "metrics.json").read_text())["dev"]["intent"]

    # evaluate tolerates the same conflict (same default rule) and names both figures.
    scored = runner.invoke(app, ["evaluate", "--model", str(out), "--intents", str(intents), "--json",
                                 "--device", "cpu"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout.strip().splitlines()[-1])
    assert report["n"] == sum(len(t) for t in INTENT_ROWS.values()) - 1
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["closed_set_accuracy"] <= 1
    # closed-set counts in-scope rows only, by the top intent; recompute it from the model's own answers
    from nlu.data import OOS_LABEL
    from nlu.engine import load_predictor
    from nlu.evaluate import top_intent

    examples = [e for e in load_labelled_csv(intents, "intent", on_conflict="drop").examples if e.label != OOS_LABEL]
    results = load_predictor(out, "cpu").predict([e.text for e in examples])
    expected = sum(top_intent(r) == e.label for r, e in zip(results, examples, strict=True)) / len(examples)
    assert report["closed_set_accuracy"] == round(expected, 4)
    text = runner.invoke(app, ["evaluate", "--model", str(out), "--intents", str(intents), "--device", "cpu"])
    assert "closed-set accuracy" in text.output and "accuracy" in text.output
