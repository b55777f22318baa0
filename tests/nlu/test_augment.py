import random

from nlu.augment import augment_texts, noisy_variant


def test_noise_is_seeded_and_keeps_labels():
    pairs = [("where is my order please", 0), ("I want a refund for my lamp", 1)]
    first = augment_texts(pairs, copies=3, seed=7)
    assert first == augment_texts(pairs, copies=3, seed=7)
    assert first[:2] == pairs
    assert len(first) > len(pairs)
    originals = dict(pairs)
    for text, label in first[2:]:
        assert text not in originals
        assert label in (0, 1)


def test_variants_stay_close_to_the_original():
    rng = random.Random(0)
    text = "Can you tell me when my package will arrive?"
    variants = {noisy_variant(text, rng) for _ in range(50)}
    assert len(variants) > 10
    for v in variants:
        assert abs(len(v) - len(text)) <= 8
        words = [w for w in v.split() if any(c.isalpha() for c in w)]
        assert len(words) == len(text.split())  # words are edited, never added or lost
