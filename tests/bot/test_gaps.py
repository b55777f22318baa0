"""Topics of unanswered messages from the real bot's review inbox (`bot.gaps`): what counts as unanswered, how
topics are sized and ranked, and which drop out."""

from __future__ import annotations

import pytest
import redis

from bot.gaps import Gaps, TopicNotFound
from bot.keys import Keys
from bot.replay import Choice
from knowledge.topics import group_texts
from tests.bot.test_bot import make_bot, say

DESIGN = ["do you offer interior design consultations", "book an interior design appointment",
          "do you have an interior design service"]
# Vague enough that the demo store's knowledge base offers suggestions rather than answering.
VAGUE = ["problem with my thing", "question about stuff i got", "help with my order thing", "about the item",
         "something about delivery and returns", "issue with payment and shipping"]


@pytest.fixture()
def bot_and_gaps(redis_url, redis_prefix, demo_engine, demo_kb):
    bot, _ = make_bot(redis_url, redis_prefix, demo_engine, demo_kb)
    gaps = Gaps(bot.review, bot.store, redis.Redis.from_url(redis_url), Keys(redis_prefix), group=group_texts,
                embed=demo_kb.embedder.encode,
                decide=lambda texts: bot.decisions_for(texts, demo_engine.predict(texts)))
    return bot, gaps


def test_unanswered_questions_form_a_topic_with_their_own_words(bot_and_gaps):
    bot, gaps = bot_and_gaps
    for i, text in enumerate(DESIGN):
        say(bot, text, conversation=f"design-{i}")
    say(bot, "how much does standard shipping cost?", conversation="answered")  # answered: never a gap
    topics = gaps.topics(7)
    [design] = [t for t in topics if set(t.examples) & set(DESIGN)]
    assert design.size == 3 and set(design.examples) == set(DESIGN) and "design" in design.label
    assert design.previous == 0 and design.trend is None and design.escalated == 0
    assert not any("shipping" in example for t in topics for example in t.examples)
    drafted = gaps.draft(design.id)
    assert drafted["question"] in DESIGN and drafted["answer"] == "" and drafted["staff_replies"] == 0
    with pytest.raises(TopicNotFound):
        gaps.draft("0" * 12)


def test_suggestions_the_customer_took_are_not_a_gap(bot_and_gaps, demo_engine):
    bot, gaps = bot_and_gaps
    decided = bot.decisions_for(VAGUE, demo_engine.predict(VAGUE))
    vague = [text for text, d in zip(VAGUE, decided, strict=True) if d.choice == Choice.SUGGEST]
    if len(vague) < 2:
        pytest.skip(f"the demo knowledge base suggests for fewer than two of {VAGUE}")
    taken, left = vague[0], vague[1]
    offered = say(bot, taken, conversation="took-it")[-1].suggestions
    assert offered
    say(bot, offered[0], conversation="took-it")  # a click sends the suggestion's own text
    say(bot, left, conversation="left-it")
    say(bot, "thanks, bye", conversation="left-it")
    texts = [t for topic in gaps.topics(7) for t in topic.examples] + gaps._texts(0, 2e9).texts
    assert left in texts and taken not in texts
