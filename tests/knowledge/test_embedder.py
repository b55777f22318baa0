"""The retrieval encoder (`knowledge.embedder.Embedder`): its size read from its directory, loaded only when
something must be embedded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from knowledge.embedder import Embedder, EmbeddingCache, configured_dimension, model_fingerprint


def test_the_model_is_loaded_only_when_the_cache_misses(tmp_path):
    embedder = Embedder()
    assert embedder.dim == 384 and not embedder.loaded  # from 1_Pooling/config.json
    cache = EmbeddingCache(embedder, tmp_path)
    first = cache.encode(["where is my order?"])
    assert embedder.loaded and embedder.calls == 1 and first.shape == (1, 384)
    cache.save()
    again = Embedder()  # a worker starting on a warm cache: everything it needs is there
    warm = EmbeddingCache(again, tmp_path).encode(["where is my order?"])
    assert not again.loaded and again.calls == 0 and np.array_equal(warm, first)


def _folder(tmp_path: Path, modules: list[dict], configs: dict[str, dict]) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "modules.json").write_text(json.dumps(modules))
    for path, config in configs.items():
        (folder / path).mkdir(parents=True, exist_ok=True)
        (folder / path / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(("modules", "configs", "dim"), [
    ([{"path": "", "type": "sentence_transformers.models.Transformer"},
      {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}],
     {"1_Pooling": {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}}, 384),
    ([{"path": "", "type": "sentence_transformers.models.Transformer"},  # two modes concatenated
      {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}],
     {"1_Pooling": {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True,
                    "pooling_mode_cls_token": True}}, 768),
    ([{"path": "", "type": "sentence_transformers.models.Transformer"},
      {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
      {"path": "2_Dense", "type": "sentence_transformers.models.Dense"},
      {"path": "3_Normalize", "type": "sentence_transformers.models.Normalize"}],
     {"1_Pooling": {"word_embedding_dimension": 768, "pooling_mode_mean_tokens": True},
      "2_Dense": {"in_features": 768, "out_features": 256}}, 256),
    ([{"path": "", "type": "sentence_transformers.models.Transformer"},  # a layer it cannot reason about
      {"path": "1_Custom", "type": "my_company.models.Projection"}], {}, None),
    ([{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}], {}, None),  # its config missing
])
def test_the_size_is_read_from_the_directory_or_left_to_the_model(tmp_path, modules, configs, dim):
    assert configured_dimension(_folder(tmp_path, modules, configs)) == dim


def test_the_fingerprint_follows_the_files(tmp_path):
    folder = _folder(tmp_path, [], {"1_Pooling": {"word_embedding_dimension": 384}})
    before = model_fingerprint(folder)
    assert before == model_fingerprint(folder) and len(before) == 64
    (folder / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 768}')
    assert model_fingerprint(folder) != before
    assert model_fingerprint(tmp_path / "absent") == ""


def test_vectors_embedded_ahead_serve_a_new_home_and_are_never_written(tmp_path):
    """`kb build --out DIR` embeds into DIR/cache; a knowledge base seeded from it (FRONTDESK_KB_EMBEDDINGS) embeds
    nothing, leaves the seed as it was, and keeps what it used in its own cache."""
    from typer.testing import CliRunner

    from adapters.cli.main import app
    from knowledge.service import KnowledgeBase

    kb = tmp_path / "faq.yaml"
    kb.write_text("- id: ship\n  question: How much is shipping?\n  answer: Shipping is $5.95.\n"
                  "  alternates: [delivery cost, is shipping free]\n"
                  "- id: hours\n  question: When are you open?\n  answer: Mon-Fri 8-20 ET.\n"
                  "  alternates: [opening hours, what time do you close]\n")
    built = CliRunner().invoke(app, ["kb", "build", "--kb", str(kb), "--out", str(tmp_path / "index")])
    assert built.exit_code == 0, built.output
    seed = tmp_path / "index" / "cache"
    before = {name: (seed / name).read_bytes() for name in ("keys.json", "vectors.npy")}

    seeded = KnowledgeBase(kb, embedder=Embedder(), cache_dir=tmp_path / "home" / "kb-cache", cache_seed=seed)
    result = seeded.reload()
    assert result.ok and result.embedded_texts == 0 and not seeded.embedder.loaded
    assert seeded.search(["what does delivery cost"])[0][0].id == "ship"
    assert {name: (seed / name).read_bytes() for name in before} == before
    home_only = KnowledgeBase(kb, embedder=Embedder(), cache_dir=tmp_path / "home" / "kb-cache")
    assert home_only.reload().embedded_texts == 0  # the home kept what it used

    other = Embedder()
    other.model_id = "another-encoder"  # vectors of another encoder are not this one's: embedded afresh
    EmbeddingCache(other, seed=seed).encode(["How much is shipping?"])
    assert other.calls == 1


@pytest.mark.parametrize("damage", ["absent", "truncated", "mismatched", "other size"])
def test_a_broken_seed_is_named_in_the_log_and_only_costs_embedding(tmp_path, caplog, damage):
    embedder = Embedder()
    seed = tmp_path / "seed"
    cache = EmbeddingCache(embedder, seed)
    expected = cache.encode(["where is my order?", "how much is shipping?"])
    cache.save()
    if damage == "absent":
        seed = tmp_path / "no-such-folder"
    elif damage == "truncated":
        (seed / "vectors.npy").write_bytes((seed / "vectors.npy").read_bytes()[:100])
    elif damage == "mismatched":  # one key more than there are vectors
        (seed / "keys.json").write_text(json.dumps([*json.loads((seed / "keys.json").read_text()), "extra"]))
    else:
        np.save(seed / "vectors.npy", np.zeros((2, 768), np.float32))
    calls = embedder.calls
    with caplog.at_level("WARNING", logger="knowledge.embedder"):
        seeded = EmbeddingCache(embedder, tmp_path / "home", seed=seed)
    assert f"embedding seed {seed}: no readable vectors" in caplog.text
    assert np.allclose(seeded.encode(["where is my order?", "how much is shipping?"]), expected, atol=1e-5)
    assert embedder.calls == calls + 2  # embedded here, as without a seed
