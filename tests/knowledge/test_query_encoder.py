"""The query encoder (`frontdesk kb encoder`, knowledge/query_encoder.py): its directory loads, it answers
customers' questions like the encoder it stands in for, and anything damaged is refused by name.

The encoder is made once per session by the real command (`query_encoder_dir`); damage is done to copies.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from knowledge.query_encoder import MIN_AGREEMENT, QueryEncoderError, load_query_encoder
from knowledge.service import KnowledgeBase

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
DEMO = Path(__file__).resolve().parents[2] / "knowledge" / "demo"
# Written for this test, in customers' words: none is in the demo's files the encoder learned from.
QUESTIONS = [
    "how long does delivery to texas usually take", "is shipping free if i spend 80 dollars",
    "can i send back a sofa i bought 3 weeks ago", "when will i get my money back after returning something",
    "do you deliver to canada or only the us", "my table arrived with a scratch what now",
    "how do i clean a velvet couch", "what screws do i need to assemble the bookshelf",
    "can i change the address on an order i placed yesterday", "do you take paypal",
    "is there a warranty on the office chair", "how do i reset my password on your site",
    "where can i see my order status", "can i cancel an order that already shipped",
    "do you sell gift cards", "what are your opening hours on sunday",
    "the drawer will not close properly", "how much does express shipping cost",
    "can i pay in instalments", "my discount code is not working",
    "what is the weather like tomorrow", "who won the football match last night",
    "can you recommend a good pizza place", "how do i renew my passport",
]


def test_the_query_encoder_loads_and_answers_like_the_encoder_it_replaces(query_encoder_dir, embedder, demo_kb):
    manifest = json.loads((query_encoder_dir / "query_encoder.json").read_text())
    assert manifest["layers"] == 6 and manifest["agreement"]["mean_cosine"] >= MIN_AGREEMENT
    encoder = load_query_encoder(query_encoder_dir, embedder)
    mine, teachers = encoder.encode(QUESTIONS), embedder.encode(QUESTIONS)
    assert mine.shape == teachers.shape and np.allclose(np.linalg.norm(mine, axis=1), 1, atol=1e-3)
    assert float(np.mean(np.sum(mine * teachers, axis=1))) >= MIN_AGREEMENT
    fast = KnowledgeBase(DEMO, embedder=embedder, query_encoder=encoder)
    assert fast.reload().ok
    assert fast.status()["encoders"]["questions"]["path"] == str(query_encoder_dir)
    best = [[hits[0].id for hits in kb.search(QUESTIONS, top_k=1)] for kb in (demo_kb, fast)]
    decided = [[(d.kind, d.best.id if d.kind == "answer" else "") for d in map(kb.answer, QUESTIONS)]
               for kb in (demo_kb, fast)]
    same_best = sum(a == b for a, b in zip(*best, strict=True))
    same_decision = sum(a == b for a, b in zip(*decided, strict=True))
    # Within the benchmark's tolerance (docs/BENCHMARKS.md "Query encoders"), on questions it never saw.
    assert same_best >= 0.9 * len(QUESTIONS) and same_decision >= 0.8 * len(QUESTIONS), (best, decided)


def _copy(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "encoder"
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize(("name", "damage", "named"), [
    ("model.onnx", b"\x00garbage" * 100, "model.onnx"),
    ("tokenizer.json", b'{"version": "1.0"}', "tokenizer.json"),
    ("query_encoder.json", b"{not json", "query_encoder.json"),
    ("probes.npy", b"not numpy", "probes.npy"),
])
def test_a_damaged_file_is_refused_naming_it(query_encoder_dir, embedder, tmp_path, name, damage, named):
    broken = _copy(query_encoder_dir, tmp_path)
    (broken / name).write_bytes(damage)
    with pytest.raises(QueryEncoderError, match=named.replace(".", r"\.")):
        load_query_encoder(broken, embedder)
    (broken / name).unlink()
    with pytest.raises(QueryEncoderError, match=named.replace(".", r"\.")):
        load_query_encoder(broken, embedder)


def test_a_graph_that_loads_but_no_longer_answers_like_its_teacher_is_refused(query_encoder_dir, embedder,
                                                                              tmp_path):
    import onnx
    from onnx import numpy_helper

    broken = _copy(query_encoder_dir, tmp_path)
    graph = onnx.load(str(broken / "model.onnx"))
    rng = np.random.default_rng(0)
    for tensor in graph.graph.initializer:  # every float weight scrambled: a well-formed graph, wrong numbers
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32 and values.size > 1000:
            tensor.CopyFrom(numpy_helper.from_array(rng.permutation(values.ravel()).reshape(values.shape),
                                                    tensor.name))
    onnx.save(graph, str(broken / "model.onnx"))
    with pytest.raises(QueryEncoderError, match="no longer answers like its teacher"):
        load_query_encoder(broken, embedder)


def test_a_query_encoder_beside_another_teacher_is_refused(query_encoder_dir, tiny_model):
    from knowledge.embedder import Embedder

    other = Embedder(str(tiny_model))  # a fine-tuned MiniLM: the same shape, other vectors
    with pytest.raises(QueryEncoderError, match="distilled from another encoder"):
        load_query_encoder(query_encoder_dir, other)


def test_distillation_brings_a_student_with_fewer_layers_toward_its_teacher(embedder, tmp_path):
    from knowledge.query_distill import distill_query_encoder, knowledge_texts, spread_layers

    assert spread_layers(6, 3) == [0, 2, 5] and spread_layers(6, 1) == [5] and spread_layers(6, 6) == list(range(6))
    with pytest.raises(ValueError, match="between 1 and 6"):
        spread_layers(6, 7)
    texts = knowledge_texts(DEMO)[:400]
    cut = distill_query_encoder(embedder.model_path, texts, tmp_path / "cut", layers=2, epochs=0)
    taught = distill_query_encoder(embedder.model_path, texts, tmp_path / "taught", layers=2, epochs=2)
    assert taught.layers == 2 and taught.agreement["layers_kept"] == [0, 5]
    # Measured on held-out texts, never trained on: learning from the teacher's vectors, not memorising them.
    assert taught.agreement["mean_cosine"] > cut.agreement["mean_cosine"] + 0.02, (cut.agreement, taught.agreement)
    with pytest.raises(ValueError, match="at least 64 distinct texts"):
        distill_query_encoder(embedder.model_path, texts[:10], tmp_path / "few")


def test_a_teacher_with_the_recorded_files_is_trusted_without_being_run(query_encoder_dir):
    """The manifest records the teacher directory's fingerprint: a worker whose teacher has those very files
    checks the student against the stored probes without loading the teacher (its vectors all come from the
    embedding cache), and the student still answers like it."""
    from knowledge.embedder import Embedder

    manifest = json.loads((query_encoder_dir / "query_encoder.json").read_text())
    teacher = Embedder()
    assert manifest["teacher_fingerprint"] == teacher.fingerprint != ""
    assert load_query_encoder(query_encoder_dir, teacher).check(teacher) >= MIN_AGREEMENT
    assert not teacher.loaded and teacher.calls == 0


def test_a_teacher_whose_files_differ_is_run_on_the_probes(query_encoder_dir, tmp_path):
    """Files changed where the vectors are not (another copy, a README edited), or a manifest from before
    fingerprints: the teacher is run on the probe texts, and accepted because it reproduces them."""
    from knowledge.embedder import Embedder, default_model_path

    copy = tmp_path / "teacher"
    shutil.copytree(default_model_path(), copy)
    (copy / "README.md").write_text("our own copy\n")
    moved = Embedder(str(copy))
    load_query_encoder(query_encoder_dir, moved)
    assert moved.loaded and moved.calls > 0
    older = _copy(query_encoder_dir, tmp_path)
    manifest = json.loads((older / "query_encoder.json").read_text())
    del manifest["teacher_fingerprint"]
    (older / "query_encoder.json").write_text(json.dumps(manifest))
    teacher = Embedder()
    load_query_encoder(older, teacher)
    assert teacher.loaded and teacher.calls > 0
