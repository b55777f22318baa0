"""Self-training's assignment step: customers' questions to entries, surest first, capped per entry."""

from __future__ import annotations

from knowledge.embedder import default_model_path
from knowledge.sources import FaqEntry
from knowledge.tuning import _batches, _one_partner_each, assign_questions

ENTRIES = [
    FaqEntry("ship", "How much is shipping?", "Shipping is $5.95.", ("delivery cost", "is shipping free")),
    FaqEntry("refund", "When will I get my refund?", "Within 10 days.", ("where is my money", "refund status")),
    FaqEntry("hours", "When are you open?", "Mon-Fri 8-20 ET.", ("opening hours", "what time do you close")),
]


def test_questions_go_to_their_entry_and_each_entry_takes_at_most_its_share():
    questions = ["how much do you charge to ship my parcel", "what does delivery cost to canada",
                 "i am still waiting for the refund you promised", "are you open on sundays",
                 "refund status", "  "]
    assigned = assign_questions(ENTRIES, default_model_path(), questions, per_entry=1)
    assert set(assigned) == {"ship", "refund", "hours"}
    assert all(len(found) == 1 for found in assigned.values())
    assert assigned["ship"][0] in questions[:2]
    assert assigned["refund"] == ["i am still waiting for the refund you promised"]  # the alternate is skipped
    assert assigned["hours"] == ["are you open on sundays"]
    both = assign_questions(ENTRIES, default_model_path(), questions, per_entry=5)["ship"]
    assert sorted(both) == sorted(questions[:2]) and both[0] == assigned["ship"][0]  # surest first


def test_self_training_batches_pair_each_text_once_and_never_two_of_one_entry():
    import random

    groups = [[f"g{g} t{i}" for i in range(40)] for g in range(5)]
    batches = _batches(groups, 4, random.Random(0), _one_partner_each)
    anchors = [a for batch in batches for a, _ in batch]
    # Linear in the texts, not quadratic: each at most once (a last batch left with one entry is dropped).
    assert len(anchors) == len(set(anchors)) >= 0.9 * sum(map(len, groups))
    for batch in batches:
        owners = [a.split()[0] for a, _ in batch]
        assert len(owners) == len(set(owners))  # in-batch negatives are always other entries
        assert all(a != b and a.split()[0] == b.split()[0] for a, b in batch)
