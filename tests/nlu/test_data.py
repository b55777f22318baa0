"""CSV validation names file and line for every bad row, all at once."""

from __future__ import annotations

import pytest

from nlu.data import DataError, read_labelled_csv, stratified_split


def test_every_problem_is_reported_with_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "text,intent\n"
        "where is my order,order_status\n"   # line 2: fine
        ",order_status\n"                    # line 3: empty text
        "track my parcel,order_status\n"     # line 4: fine
        "Where is my order,refund\n"         # line 5: same text, other label (case differs)
        "hello,\n"                           # line 6: empty label
        "lonely text,singleton\n",           # line 7: label with one example
        encoding="utf-8",
    )
    with pytest.raises(DataError) as info:
        read_labelled_csv(path, "intent")
    problems = {p.line: p.message for p in info.value.problems}
    assert set(problems) == {3, 5, 6, 7}
    assert "empty text" in problems[3]
    assert "'refund'" in problems[5] and "line 2" in problems[5]
    assert "empty intent" in problems[6]
    assert "'singleton'" in problems[7] and "only 1" in problems[7]
    assert all(str(p).startswith(f"{path}:{p.line}:") for p in info.value.problems)


def test_missing_column_names_the_header(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("utterance,label\nhi,greet\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_labelled_csv(path, "intent")
    (problem,) = info.value.problems
    assert problem.line == 1 and "'text'" in problem.message and "'intent'" in problem.message


def test_quoted_multiline_rows_report_their_real_line(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('text,intent\n"line one\nline two",a\nx,a\n"",a\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_labelled_csv(path, "intent")
    assert [p.line for p in info.value.problems] == [5]


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,intent\ncaf\xe9,a\n")
    with pytest.raises(DataError, match=r"latin.csv:2: file is not valid UTF-8"):
        read_labelled_csv(path, "intent")
    with pytest.raises(DataError, match="cannot read file"):
        read_labelled_csv(tmp_path / "nope.csv", "intent")


def test_stratified_split_keeps_every_label_in_train(tiny_data):
    examples = read_labelled_csv(tiny_data[0], "intent")
    train, dev = stratified_split(examples, 0.2, seed=1)
    assert {e.label for e in train} == {e.label for e in examples}
    assert {e.label for e in dev} == {e.label for e in examples}
    assert len(train) + len(dev) == len(examples)
    assert stratified_split(examples, 0.2, seed=1) == (train, dev)  # deterministic
