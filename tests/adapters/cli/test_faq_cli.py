"""`frontdesk faq build / search / tune` as the contract says."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app

runner = CliRunner()
JSONL = "\n".join(json.dumps(e) for e in [
    {"id": "ship", "question": "How much is shipping?", "answer": "Shipping is $5.95.",
     "alternates": ["delivery cost", "is shipping free", "postage price"]},
    {"id": "refund", "question": "When will I get my refund?", "answer": "Within 10 days.",
     "alternates": ["where is my money", "refund status", "has my refund been processed"]},
    {"id": "hours", "question": "When are you open?", "answer": "Mon-Fri 8-20 ET.",
     "alternates": ["opening hours", "what time do you close", "are you open on saturday"]},
]) + "\n"


def test_build_then_search_json(tmp_path):
    kb = tmp_path / "faq.jsonl"
    kb.write_text(JSONL)
    out = tmp_path / "index"
    built = runner.invoke(app, ["faq", "build", "--kb", str(kb), "--out", str(out)])
    assert built.exit_code == 0, built.output
    assert "3 FAQ entries" in built.output
    result = runner.invoke(app, ["faq", "search", "--index", str(out), "--json", "--top-k", "2",
                                 "how much does delivery cost", "i want to know about my refund"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["how much does delivery cost", "i want to know about my refund"]
    assert lines[0]["hits"][0]["id"] == "ship" and lines[1]["hits"][0]["id"] == "refund"
    for line in lines:
        assert len(line["hits"]) == 2
        assert line["hits"][0]["score"] >= line["hits"][1]["score"]
    # Rebuilding the same source into the same folder embeds nothing new.
    again = runner.invoke(app, ["faq", "build", "--kb", str(kb), "--out", str(out)])
    assert again.exit_code == 0 and "0 texts embedded" in again.output


def test_build_reports_every_problem(tmp_path):
    kb = tmp_path / "faq.jsonl"
    kb.write_text('{"id": "a", "question": "q?"}\n{"id": "a", "question": "", "answer": "x"}\n')
    result = runner.invoke(app, ["faq", "build", "--kb", str(kb), "--out", str(tmp_path / "i")])
    assert result.exit_code == 1
    assert f"{kb}:1: missing answer" in result.output
    assert f"{kb}:2: empty or missing question" in result.output
    assert f"{kb}:2: duplicate id 'a'" in result.output


@pytest.mark.slow
def test_tune_writes_a_loadable_encoder(tmp_path):
    kb = tmp_path / "faq.jsonl"
    kb.write_text(JSONL)
    out = tmp_path / "encoder"
    result = runner.invoke(app, ["faq", "tune", "--kb", str(kb), "--out", str(out), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    built = runner.invoke(app, ["faq", "build", "--kb", str(kb), "--out", str(tmp_path / "idx"),
                                "--encoder", str(out)])
    assert built.exit_code == 0, built.output
    assert json.loads((tmp_path / "idx" / "index.json").read_text())["encoder"] == str(out)


def test_kb_build_reports_articles_and_search_hits_carry_their_source(tmp_path):
    from tests.knowledge.test_knowledge_articles import write_kb

    kb = write_kb(tmp_path)
    (kb / "templates.yaml").write_text('greet: "Hi, this is Larkspur help."\nfallback: "Sorry?"\n')
    out = tmp_path / "index"
    built = runner.invoke(app, ["kb", "build", "--kb", str(kb), "--out", str(out), "--json",
                                "--articles-base-url", "https://help.example"])
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout.splitlines()[-1])
    assert (report["faq_entries"], report["articles"], report["sections"], report["passages"]) == (1, 3, 7, 7)
    assert report["calibration"] == report["answer_rule"]["method"]
    assert report["wording"] == ["fallback", "greet"]  # the folder's own texts, over the bot's defaults
    result = runner.invoke(app, ["kb", "search", "--index", str(out), "--json", "how often should i oil an oak table",
                                 "can i send something back"])
    assert result.exit_code == 0, result.output
    oak, returns = (json.loads(line) for line in result.stdout.splitlines())
    assert oak["hits"][0]["source"] == {"kind": "article", "id": "care/oak-furniture",
                                        "title": "Caring for oak furniture", "section": "Oiling the table",
                                        "url": "https://help.example/care/oak-furniture#oiling"}
    assert returns["hits"][0]["source"] == {"kind": "faq", "id": "returns"}
