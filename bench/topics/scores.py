"""Scoring topics against the true intents of the messages they hold.

- ARI: scikit-learn's adjusted Rand index between the topic of each held-out message that landed in a topic and
  its intent (covered questions left out of it; they are counted apart).
- ARI, every unanswered held-out message: the same with the messages that reached the inbox but no topic (a
  single message, or a topic dropped as covered) each counted as a topic of its own.
- Purity: over the same held-out messages, the share that carry their topic's most common intent.
- Found: an intent is "found as a topic of its own" when some topic's most common label (covered questions
  counted as one label) is that intent and that topic holds at least half of the intent's messages that went
  unanswered (reached the review inbox). An intent the bot answered every time is not found.
"""

from __future__ import annotations

from collections import Counter

from bench.topics.data import COVERED


def score(topics: list[list[str]], unanswered: list[str], intents: list[str]) -> dict:
    """`topics`: the true labels of each topic's messages; `unanswered`: the labels of every message that reached
    the inbox (in a topic or not); `intents`: the held-out intents sent."""
    from sklearn.metrics import adjusted_rand_score

    truth, predicted = [], []
    for number, labels in enumerate(topics):
        for label in labels:
            if label != COVERED:
                truth.append(label)
                predicted.append(number)
    in_topics = Counter(truth)
    # Messages that reached the inbox but no topic: each a topic of its own, for the second ARI.
    left = Counter(label for label in unanswered if label != COVERED) - in_topics
    truth_all, predicted_all = list(truth), list(predicted)
    for label, count in left.items():
        for _ in range(count):
            truth_all.append(label)
            predicted_all.append(len(topics) + len(predicted_all))
    pure = sum(Counter(label for label in labels if label != COVERED).most_common(1)[0][1]
               for labels in topics if any(label != COVERED for label in labels))
    waiting = Counter(label for label in unanswered if label != COVERED)
    found = []
    for intent in intents:
        for labels in topics:
            top, count = Counter(labels).most_common(1)[0]
            if top == intent and waiting[intent] and count * 2 >= waiting[intent]:
                found.append(intent)
                break
    majority = Counter(Counter(labels).most_common(1)[0][0] for labels in topics)
    return {
        "ari": _round(adjusted_rand_score(truth, predicted)) if truth else None,
        "ari_all_unanswered": _round(adjusted_rand_score(truth_all, predicted_all)) if truth_all else None,
        "purity": _round(pure / len(truth)) if truth else None,
        "found": len(found), "found_share": _round(len(found) / len(intents)) if intents else None,
        "found_intents": found, "not_found": [i for i in intents if i not in found],
        "topics": len(topics),
        "topics_mostly_covered": majority.get(COVERED, 0),
        "topics_sharing_a_majority_intent": sum(n - 1 for label, n in majority.items() if label != COVERED),
        "held_out_in_topics": len(truth), "held_out_unanswered": sum(waiting.values()),
        "covered_in_topics": sum(label == COVERED for labels in topics for label in labels),
        "covered_unanswered": sum(label == COVERED for label in unanswered),
    }


def _round(value: float) -> float:
    return round(float(value), 4)


# ---------------------------------------------------------------- baselines, on what the product's grouping was handed
def _normalised(vectors):
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def one_topic_per_text(handed, intents: list[str]) -> dict:
    """Every distinct (normalised) text a topic of its own, however few messages it has: what the review inbox's
    groups (`bot.review.group_of`) already give."""
    texts, _, _, truth = handed
    labels = [truth.get(t, []) for t in texts]
    return score([ls for ls in labels if ls], [label for ls in labels for label in ls], intents)


def kmeans_true_k(handed, intents: list[str]) -> dict:
    """An oracle: k-means (scikit-learn, 10 starts, seed 0) over the held-out messages alone, told how many
    intents they hold."""
    from sklearn.cluster import KMeans

    texts, vectors, _, truth = handed
    rows = [i for i, t in enumerate(texts) if any(label != COVERED for label in truth.get(t, []))]
    held = [[label for label in truth[texts[i]] if label != COVERED] for i in rows]
    k = len({label for ls in held for label in ls})
    if k < 2:
        return score([held[0]] if held else [], [label for ls in held for label in ls], intents)
    clusters = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(_normalised(vectors[rows]))
    topics = [[label for c, ls in zip(clusters, held, strict=True) if c == n for label in ls] for n in range(k)]
    every = [label for t in texts for label in truth.get(t, [])]
    return score([t for t in topics if t], every, intents)


def hdbscan(handed, intents: list[str], min_cluster_size: int) -> dict:
    """scikit-learn's HDBSCAN on the same texts and unit vectors (euclidean on unit vectors ranks as cosine does);
    its noise is in no topic, and a topic needs two messages as the product's do."""
    from sklearn.cluster import HDBSCAN

    texts, vectors, weights, truth = handed
    every = [label for t in texts for label in truth.get(t, [])]
    if len(texts) < max(2, min_cluster_size):
        return score([], every, intents)
    clusters = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(_normalised(vectors))
    topics = []
    for n in sorted(set(clusters) - {-1}):
        members = [i for i, c in enumerate(clusters) if c == n]
        if sum(weights[i] for i in members) >= 2:
            topics.append([label for i in members for label in truth.get(texts[i], [])])
    return score(topics, every, intents)
