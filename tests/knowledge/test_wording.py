"""A company's wording in its knowledge folder: read with the entries, versioned with them, rejected like them."""

from __future__ import annotations

import pytest
import redis

from knowledge.loading import load_knowledge
from knowledge.records import KnowledgeBaseError
from knowledge.service import KnowledgeBase
from knowledge.wording import WORDING_FILE, read_wording
from tests.knowledge.test_knowledge_articles import write_kb
from tests.support.fleet import synced_workers, until

ACME = 'greet: "Welcome to Acme help, {name}!"\nescalated:\n  asked_for_human: "Fetching an Acme person."\n'


def test_the_wording_is_read_with_the_entries_and_is_no_faq_entry(tmp_path):
    root = write_kb(tmp_path)
    (root / WORDING_FILE).write_text(ACME)
    loaded = load_knowledge(root)
    assert loaded.wording == {"greet": "Welcome to Acme help, {name}!",
                              "escalated": {"asked_for_human": "Fetching an Acme person."}}
    assert loaded.faq_entries == 1  # templates.yaml is not read as FAQ entries
    assert load_knowledge(write_kb(tmp_path / "plain")).wording is None


@pytest.mark.parametrize(("text", "line", "says"), [
    ("greet: Hi\nfallback: x: y\n", 2, "not valid YAML"),
    ("greet: Hi\nfallback:\n", 2, "fallback: no text given"),
    ("greet: Hi\nfallback:\n  - [nested, list]\n", 2, "fallback: a list of texts"),
    ("greet: Hi\nescalated:\n  asked_for_human:\n    deeper: no\n", 2, "escalated: a mapping of names to texts"),
    ("- greet\n- fallback\n", 1, "expected a mapping of names to texts"),
    ("greet: \xff\n", 0, "cannot read"),
])
def test_wording_that_is_not_names_and_texts_is_named_by_file_and_line(tmp_path, text, line, says):
    path = tmp_path / WORDING_FILE
    path.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    wording, problems = read_wording(tmp_path)
    assert wording is None and len(problems) == 1
    assert (problems[0].source, problems[0].line) == (str(path), line) and says in problems[0].message


def test_a_broken_wording_file_is_rejected_and_the_version_served_stays(embedder, tmp_path):
    root = write_kb(tmp_path)
    (root / WORDING_FILE).write_text(ACME)
    kb = KnowledgeBase(root, embedder=embedder, cache_dir=tmp_path / "cache", use_intents=False)
    try:
        assert kb.reload().ok
        served = kb.index.version.content_hash
        (root / WORDING_FILE).write_text("greet:\n  - [Hi]\n")
        rejected = kb.reload()
        assert not rejected.ok and [(p.source, p.line) for p in rejected.errors] == [(str(root / WORDING_FILE), 1)]
        assert kb.index.version.content_hash == served and kb.index.wording["greet"].startswith("Welcome to Acme")
        with pytest.raises(KnowledgeBaseError):
            load_knowledge(root)
    finally:
        kb.close()


def test_a_change_of_wording_alone_is_a_new_version_every_worker_serves_and_a_restore_brings_the_old_back(
        embedder, tmp_path, redis_url, redis_prefix):
    root = write_kb(tmp_path)
    with synced_workers(root, embedder, tmp_path, lambda: redis.Redis.from_url(redis_url), redis_prefix) \
            as (kbs, syncs):
        plain = kbs[0].index.version.content_hash
        assert kbs[0].index.wording is None
        (root / WORDING_FILE).write_text(ACME)
        reloaded = kbs[0].reload()
        assert reloaded.ok and reloaded.changed and reloaded.embedded_texts == 0  # nothing to embed, a new version
        syncs[0].announce("reload")
        until(lambda: kbs[1].index.version.content_hash == kbs[0].index.version.content_hash != plain)
        assert kbs[1].index.wording["greet"] == "Welcome to Acme help, {name}!"
        kbs[0].restore_previous()
        assert kbs[0].index.version.content_hash == plain and kbs[0].index.wording is None
