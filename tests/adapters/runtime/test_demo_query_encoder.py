"""`frontdesk run` serves a query encoder it makes once (int8 ONNX, every layer of the retrieval encoder)."""

from __future__ import annotations

import io
import json
import time

import pytest
from rich.console import Console

from adapters.runtime.demo_model import ensure_demo_query_encoder
from adapters.runtime.settings import DEMO_KB, Settings
from knowledge.query_encoder import load_query_encoder


@pytest.mark.slow
def test_the_demo_query_encoder_is_made_once_and_loads_against_the_retrieval_encoder(tmp_path, embedder):
    said = io.StringIO()
    settings = Settings(FRONTDESK_HOME=tmp_path)
    made = ensure_demo_query_encoder(settings, Console(file=said), DEMO_KB)
    assert made is not None and made.is_relative_to(tmp_path / "query-encoders")
    assert "Making the query encoder" in said.getvalue()
    encoder = load_query_encoder(made, embedder)  # refused if it did not answer like this encoder
    assert encoder.info.layers == 6
    started, again = time.monotonic(), ensure_demo_query_encoder(settings, Console(file=io.StringIO()), DEMO_KB)
    assert again == made and time.monotonic() - started < 5  # found, not made again
    # One made before teachers' fingerprints were recorded would have every worker load the teacher: made again.
    manifest = made / "query_encoder.json"
    older = json.loads(manifest.read_text())
    del older["teacher_fingerprint"]
    manifest.write_text(json.dumps(older))
    said = io.StringIO()
    assert ensure_demo_query_encoder(settings, Console(file=said), DEMO_KB) == made
    assert "Making the query encoder" in said.getvalue()
    assert json.loads(manifest.read_text())["teacher_fingerprint"] == embedder.fingerprint


def test_no_query_encoder_when_it_cannot_be_made_and_the_plain_encoder_serves(tmp_path):
    said = io.StringIO()
    settings = Settings(FRONTDESK_HOME=tmp_path, FRONTDESK_FAQ_ENCODER=tmp_path / "no-such-encoder")
    assert ensure_demo_query_encoder(settings, Console(file=said, width=300), DEMO_KB) is None
    assert "no query encoder" in said.getvalue()
