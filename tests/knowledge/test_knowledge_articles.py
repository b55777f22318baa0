"""Help-center articles in the knowledge base: passages, cited answers, one calibrated rule, live reloads."""

from __future__ import annotations

import pytest
import redis
import yaml

from knowledge.loading import load_knowledge
from knowledge.passages import PASSAGE_CHARS, article_passages
from knowledge.policy import CURATED_TIE, DecisionKind, Hit, prefer_curated
from knowledge.quoting import QUOTE_CHARS, quote
from knowledge.service import KnowledgeBase
from knowledge.sources import ArticleRef, FaqEntry
from tests.support.fleet import synced_workers, until

OAK = """---
title: Caring for oak furniture
tags: [care]
---

Solid oak lasts for generations when it is kept out of direct sunlight and away from radiators.

## Oiling the table {#oiling}

Oil an oak table twice a year with a hardwax oil. Wipe a thin coat along the grain with a lint-free cloth,
leave it for ten minutes, then buff off the excess. Let it cure overnight before putting anything on it.

## Removing water rings

White rings are moisture trapped in the finish. Lay a dry cotton cloth over the ring and press it with a warm
iron for a few seconds; repeat until the ring fades. Never use a wet cloth or furniture polish with silicone.

```
warm iron, no steam
```
"""

LINEN = """---
title: Washing linen bedding
url: https://help.larkspur.example/care/linen
---

## Washing temperature

Wash linen sheets and duvet covers at 40 degrees on a gentle cycle with a mild liquid detergent. Do not use
bleach: it weakens the flax fibres and yellows white linen.

## Drying and ironing

Tumble dry on low heat and take the linen out while it is still slightly damp. Linen is meant to look relaxed,
so ironing is optional; if you do iron it, use a hot iron on the reverse while damp.
"""

LAMP = """# Installing the Ayla pendant lamp

## Safety first

Turn off the power at the breaker before you start. In most places a qualified electrician must connect a
ceiling light: if you are not sure, hire one.

## Choosing a bulb

The Ayla takes one E26 bulb of at most 60 watts, or an LED equivalent. Dimmable LED bulbs work with a
trailing-edge dimmer.
"""

FAQ = [{"id": "returns", "question": "How do I return an item?", "answer": "Start a return within 30 days.",
        "alternates": ["can i send something back", "what is your return policy", "return a product"]}]


def write_kb(tmp_path, *, faq: bool = True, articles: dict[str, str] | None = None):
    """A knowledge folder (beside the test's caches, never holding them) with three articles and one FAQ entry."""
    root = tmp_path / "kb"
    articles = {"care/oak-furniture.md": OAK, "care/linen.md": LINEN, "assembly/ayla-lamp.md": LAMP,
                **(articles or {})}
    for name, text in articles.items():
        path = root / "articles" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if faq:
        (root / "faq.yaml").write_text(yaml.safe_dump(FAQ))
    return root


def test_articles_are_read_into_passages_beside_the_faq(tmp_path):
    loaded = load_knowledge(write_kb(tmp_path), base_url="https://docs.example")
    assert loaded.faq_entries == 1 and len(loaded.articles) == 3
    by_id = {a.id: a for a in loaded.articles}
    assert set(by_id) == {"care/oak-furniture", "care/linen", "assembly/ayla-lamp"}
    oiling = next(p for p in loaded.entries if p.id == "care/oak-furniture#oiling")
    assert oiling.question == "Caring for oak furniture › Oiling the table"
    assert oiling.answer_id == "care/oak-furniture"
    assert oiling.article == ArticleRef("care/oak-furniture", "Caring for oak furniture", "Oiling the table",
                                        "https://docs.example/care/oak-furniture#oiling")
    assert oiling.body.startswith("Caring for oak furniture › Oiling the table\n")
    rings = next(p for p in loaded.entries if p.article and p.article.section == "Removing water rings")
    assert "warm iron, no steam" in rings.answer and "warm iron, no steam" not in rings.body  # code shown, not matched
    linen = next(p for p in loaded.entries if p.answer_id == "care/linen")
    assert linen.article.url.startswith("https://help.larkspur.example/care/linen")  # front matter url wins
    assert by_id["assembly/ayla-lamp"].title == "Installing the Ayla pendant lamp"


def test_a_long_section_is_cut_between_paragraphs_with_its_heading_repeated():
    from knowledge.articles import Article, Block, BlockKind, Section

    paragraphs = tuple(Block(BlockKind.PROSE, f"Paragraph {i}. " + "Words about sheets. " * 20) for i in range(6))
    article = Article("guide", "Guide", (Section(("Long part",), paragraphs, 3, "long"),), "guide.md")
    passages = article_passages(article)
    assert len(passages) >= 3
    assert all(p.body.startswith("Guide › Long part\n") for p in passages)
    assert all(len(p.body) <= PASSAGE_CHARS + 200 for p in passages)
    assert len({p.id for p in passages}) == len(passages)
    assert "".join(p.answer for p in passages).count("Paragraph") == 6  # nothing lost, nothing repeated


def test_a_quote_keeps_the_sentences_that_answer_and_lists_whole():
    answer = "\n\n".join([
        "Our warehouse is in Ohio. " * 8,
        "To remove candle wax, chill it with ice and lift it off with a plastic card. Then iron it between paper.",
        "- Ice cubes\n- A plastic card\n- Brown paper",
        "Unrelated closing remarks about gift cards and vouchers. " * 6])
    entry = FaqEntry("care#wax", "Care › Wax", answer, body="x", article=ArticleRef("care", "Care", "Wax"))
    quoted = quote(entry, "how do I get candle wax off the tablecloth")
    assert "chill it with ice" in quoted and "- Ice cubes\n- A plastic card\n- Brown paper" in quoted
    assert len(quoted) <= QUOTE_CHARS + 2
    assert quoted.endswith("…")
    faq = FaqEntry("returns", "How do I return an item?", "Start a return. " * 80)
    assert quote(faq, "returns") == faq.answer  # curated answers are never trimmed


def test_a_curated_entry_wins_a_tie_with_a_passage():
    entry = FaqEntry("returns", "How do I return an item?", "Start a return within 30 days.")
    passage = FaqEntry("policies#returns", "Policies › Returns", "...", body="...",
                       article=ArticleRef("policies", "Policies", "Returns"))
    other = FaqEntry("shipping", "Shipping?", "...")
    ranked = prefer_curated([Hit(passage, 0.805), Hit(entry, 0.80), Hit(other, 0.6)])
    assert [h.id for h in ranked] == ["returns", "shipping"]
    clear = prefer_curated([Hit(passage, 0.80 + CURATED_TIE * 3), Hit(entry, 0.80)])
    assert [h.id for h in clear] == ["policies", "returns"]


def test_an_articles_only_knowledge_base_answers_with_citations_and_declines_the_rest(embedder, tmp_path):
    kb = KnowledgeBase(write_kb(tmp_path, faq=False), embedder=embedder, cache_dir=tmp_path / "cache",
                       articles_base_url="https://docs.example/")
    try:
        result = kb.reload()
        assert result.ok, result.errors
        status = kb.status()
        assert status["contents"] == {"faq_entries": 0, "articles": 3, "sections": 7, "passages": 7}
        assert status["calibration"].startswith(("default", "calibrated"))
        decision = kb.answer("what temperature should i wash my linen sheets at")
        assert decision.kind is DecisionKind.ANSWER, decision
        assert decision.best.source == {"kind": "article", "id": "care/linen", "title": "Washing linen bedding",
                                        "section": "Washing temperature",
                                        "url": "https://help.larkspur.example/care/linen#washing-temperature"}
        assert "40 degrees" in decision.text
        assert kb.answer("what is the capital of mongolia").kind is not DecisionKind.ANSWER
    finally:
        kb.close()


def test_generated_calibration_asks_article_questions_and_their_near_misses(embedder, tmp_path):
    from knowledge.generation import NEAR_MISS_SHARE, generated_questions, generated_set

    loaded = load_knowledge(write_kb(tmp_path))
    made = generated_questions(loaded.entries)
    assert len(made.covered) == len(made.twins) and made.covered
    assert {"care/oak-furniture", "care/linen", "assembly/ayla-lamp"} <= {i for q in made.covered for i in q.expected}
    for question, twin in zip(made.covered, made.twins, strict=True):
        # The twin hides the whole article: every row the covered question hid, and more.
        assert twin.text == question.text and twin.near_miss and not twin.expected
        assert question.exclude_rows < twin.exclude_rows
    calibration = generated_set(loaded.entries).questions
    near = [q for q in calibration if q.near_miss]
    assert abs(len(near) / len(calibration) - NEAR_MISS_SHARE) < 0.05
    # Stable: the same knowledge base generates the same questions (a reload re-embeds none of them).
    assert [q.text for q in generated_set(loaded.entries).questions] == [q.text for q in calibration]


def test_a_dev_set_naming_articles_takes_precedence(embedder, tmp_path):
    root = write_kb(tmp_path)
    rows = ["text,id", "how do i oil my oak table,care/oak-furniture",
            "what bulb does the lamp take,assembly/ayla-lamp", "can i return this,returns", "do you sell gift cards,"]
    (root / "dev-questions.csv").write_text("\n".join(dict.fromkeys(rows)) + "\n" + "\n".join(
        f"question number {i} about oak,care/oak-furniture" for i in range(20)))
    kb = KnowledgeBase(root, embedder=embedder, cache_dir=tmp_path / "cache")
    try:
        assert kb.reload().ok
        assert "dev-questions.csv" in kb.status()["calibration"]
        (root / "dev-questions.csv").write_text("text,id\nhow do i oil it,care/no-such-article\n")
        result = kb.reload()
        assert not result.ok and "care/no-such-article" in str(result.errors[0])
    finally:
        kb.close()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "pdf"),
    ("empty.md", b"---\ntitle: Nothing here\n---\n\n", "no text"),
    ("latin1.html", b"<html><body><p>caf\xe9 \xff\xfe</p></body></html>", ""),
    ("binary.txt", b"\x00\x01\x02binary\x00", ""),
    ("bad-front-matter.md", b"---\ntitle: [unclosed\n---\n\nBody text here.\n", ""),
])
def test_a_bad_article_is_named_and_the_serving_index_stays(embedder, tmp_path, name, content, message):
    root = write_kb(tmp_path)
    kb = KnowledgeBase(root, embedder=embedder, cache_dir=tmp_path / "cache", use_intents=False)
    try:
        assert kb.reload().ok
        before = kb.index.version.content_hash
        (root / "articles" / name).write_bytes(content)
        result = kb.reload()
        if name == "latin1.html" and result.ok:  # a legacy encoding that decodes is an article, not an error
            return
        assert not result.ok
        problem = result.errors[0]
        assert problem.source.endswith(name) and isinstance(problem.line, int)
        assert str(problem).startswith(f"{problem.source}:{problem.line}: ")
        assert message.lower() in problem.message.lower()
        assert kb.index.version.content_hash == before
        assert kb.answer("how do i oil my oak table").kind is not None  # still serving
    finally:
        kb.close()


def test_changing_one_article_re_embeds_only_its_passages(embedder, tmp_path):
    root = write_kb(tmp_path)
    kb = KnowledgeBase(root, embedder=embedder, cache_dir=tmp_path / "cache", use_intents=False)
    try:
        first = kb.reload()
        assert first.ok and first.embedded_texts > 0
        lamp = root / "articles" / "assembly" / "ayla-lamp.md"
        lamp.write_text(LAMP.replace("60 watts", "40 watts"))
        changed = kb.reload()
        assert changed.ok and changed.changed
        assert 0 < changed.embedded_texts <= 6  # the one passage, and the questions made from it
        assert "40 watts" in " ".join(e.answer for e in kb.index.entries if e.answer_id == "assembly/ayla-lamp")
        lamp.unlink()
        removed = kb.reload()
        assert removed.ok and removed.embedded_texts == 0
        assert "assembly/ayla-lamp" not in {e.answer_id for e in kb.index.entries}
    finally:
        kb.close()


def test_an_article_edit_reaches_every_worker(embedder, tmp_path, redis_url, redis_prefix):
    root = write_kb(tmp_path)
    with synced_workers(root, embedder, tmp_path, lambda: redis.Redis.from_url(redis_url), redis_prefix) \
            as (kbs, syncs):
        (root / "articles" / "care" / "linen.md").write_text(LINEN.replace("40 degrees", "30 degrees"))
        assert kbs[0].reload().ok
        syncs[0].announce("reload")
        until(lambda: kbs[1].index.version.content_hash == kbs[0].index.version.content_hash)
        text = " ".join(e.answer for e in kbs[1].index.entries if e.answer_id == "care/linen")
        assert "30 degrees" in text and "40 degrees" not in text


def test_calibration_asks_the_model_again_only_for_new_questions_or_a_new_model(embedder, tmp_path):
    from knowledge.policy import Signal

    asked: list[str] = []

    def classify(texts):
        asked.extend(texts)
        return [Signal("returns", 0.9) for _ in texts]

    # Enough sections for the rule to be calibrated (MIN_COVERED questions), and an FAQ entry linked to an intent,
    # so the model's answers count.
    extra = {f"guides/topic-{i}.md": f"# Topic {i}\n\n## Cleaning part {i}\n\nWipe part {i} with a damp cloth "
                                     f"every {i + 2} weeks and dry it at once.\n" for i in range(8)}
    root = write_kb(tmp_path, articles=extra)
    (root / "faq.yaml").write_text(yaml.safe_dump([{**FAQ[0], "intents": ["returns"]}]))
    kb = KnowledgeBase(root, embedder=embedder, cache_dir=tmp_path / "cache", classify=classify)
    try:
        assert kb.reload().ok and asked
        first = len(asked)
        lamp = root / "articles" / "assembly" / "ayla-lamp.md"
        lamp.write_text(LAMP.replace("60 watts", "40 watts"))
        assert kb.reload().ok
        assert 0 < len(asked) - first < first / 2  # only the changed article's questions
        before = len(asked)
        assert kb.reload(recalibrate=True).ok  # a model deploy: every question is asked of the new model
        assert len(asked) - before == first
    finally:
        kb.close()


def test_a_restart_embeds_nothing_the_saved_cache_holds_sentences_included(embedder, tmp_path):
    root = write_kb(tmp_path)
    first = KnowledgeBase(root, embedder=embedder, cache_dir=tmp_path / "cache", use_intents=False)
    try:
        assert first.reload().embedded_texts > 0
    finally:
        first.close()
    restarted = KnowledgeBase(root, embedder=embedder, cache_dir=tmp_path / "cache", use_intents=False)
    try:
        result = restarted.reload()
        assert result.ok and result.embedded_texts == 0
    finally:
        restarted.close()
