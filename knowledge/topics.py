"""Grouping customers' messages by meaning into topics, each named by its distinctive words.

Rule: two messages share a topic when the average cosine distance between their groups'
sentence embeddings stays under `DISTANCE` (scikit-learn's agglomerative clustering, average
linkage, no fixed number of topics). Up to `EXACT_LIMIT` distinct texts are clustered directly;
more (100k messages) are first cut into cells by FAISS's spherical k-means, and the cells are
clustered the same way by the average distance between their members, so the time grows with the
messages, not their square. A topic needs `min_size` messages (counted with their `weights`, how often each text came).

A topic's label is its top terms by class-based TF-IDF (c-TF-IDF): a term's share of the topic's
words, times the log of how rare it is across all topics, so "gift · wrap" names a topic of gift
wrapping questions rather than "order", which every topic has. Masked placeholders (`<number>`,
`<email>`) and English stop words never name a topic.

The embeddings are the ones retrieval already computed for each message (bot.gaps keeps them);
this module neither embeds nor imports anything of the bot's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DISTANCE = 0.65  # cosine distance; chosen by bench.topics on tuning intents (docs/BENCHMARKS.md "Topics of unanswered")
EXACT_LIMIT = 3000  # distinct texts clustered directly; above, k-means cells first
LABEL_TERMS = 3
_MASKS = {"number", "email", "url"}


@dataclass(frozen=True)
class TopicGroup:
    """One topic: indices of its texts, the most central first, its centroid and its label."""

    members: tuple[int, ...]
    centroid: np.ndarray
    label: str
    size: int  # messages, weights counted


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _agglomerate(vectors: np.ndarray, distance: float) -> np.ndarray:
    """Average-linkage clusters of `vectors` (unit length, or cells' mean vectors: see `cluster`)."""
    from sklearn.cluster import AgglomerativeClustering

    if len(vectors) == 1:
        return np.zeros(1, dtype=int)
    # 1 - dot product: the cosine distance of unit vectors; for two cells' mean vectors, the average cosine distance
    # between their members, so cells merge exactly when their texts would on average.
    distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    model = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                    distance_threshold=distance)
    return model.fit_predict(distances)


def cluster(vectors: np.ndarray, distance: float = DISTANCE, exact_limit: int = EXACT_LIMIT) -> np.ndarray:
    """A cluster number per vector (see the module docstring)."""
    vectors = _normalised(vectors)
    if len(vectors) <= exact_limit:
        return _agglomerate(vectors, distance)
    import faiss

    # About 40 texts a cell: fine enough that a cell rarely mixes two topics, few enough to train in seconds.
    cells_wanted = min(exact_limit, max(64, len(vectors) // 40))
    kmeans = faiss.Kmeans(vectors.shape[1], cells_wanted, niter=12, seed=0, spherical=True, verbose=False,
                          max_points_per_centroid=64)
    kmeans.train(vectors)
    _, cells = kmeans.index.search(vectors, 1)
    cells = cells[:, 0]
    used = np.unique(cells)
    # Each cell by the mean of its members, not normalised: a normalised centroid is nearer its neighbours than
    # its members are, so cells compared that way merge far more than the same texts would directly.
    means = np.stack([vectors[cells == cell].mean(axis=0) for cell in used])
    cell_clusters = _agglomerate(means, distance)
    lookup = np.zeros(cells_wanted, dtype=int)
    lookup[used] = cell_clusters
    return lookup[cells]


def group_texts(texts: Sequence[str], vectors: np.ndarray, weights: Sequence[int] | None = None, *,
                distance: float = DISTANCE, min_size: int = 2, exact_limit: int = EXACT_LIMIT) -> list[TopicGroup]:
    """The topics among `texts` (distinct texts, with `weights` = how often each came), largest first."""
    if len(texts) == 0:
        return []
    weights = np.asarray(weights if weights is not None else [1] * len(texts), dtype=np.int64)
    vectors = _normalised(vectors)
    labels = cluster(vectors, distance, exact_limit)
    found = []
    for number in np.unique(labels):
        members = np.flatnonzero(labels == number)
        size = int(weights[members].sum())
        if size < min_size:
            continue
        centroid = _normalised((vectors[members] * weights[members, None]).sum(axis=0, keepdims=True))[0]
        central = members[np.argsort(-(vectors[members] @ centroid), kind="stable")]
        found.append((central, centroid, size))
    names = label_topics([[texts[i] for i in members] for members, _, _ in found],
                         [[int(weights[i]) for i in members] for members, _, _ in found])
    groups = [TopicGroup(tuple(int(i) for i in members), centroid, name, size)
              for (members, centroid, size), name in zip(found, names, strict=True)]
    return sorted(groups, key=lambda g: (-g.size, g.label))


def label_topics(topics: list[list[str]], weights: list[list[int]] | None = None, terms: int = LABEL_TERMS
                 ) -> list[str]:
    """Each topic's most distinctive terms by c-TF-IDF, joined with " · " (a topic's own texts when it has none)."""
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    if not topics:
        return []
    weights = weights or [[1] * len(texts) for texts in topics]
    vectorizer = CountVectorizer(stop_words=list(ENGLISH_STOP_WORDS | _MASKS),
                                 token_pattern=r"(?u)\b[^\W\d_][\w'-]+\b")
    flat = [text for texts in topics for text in texts]
    try:
        per_text = vectorizer.fit_transform(flat)
    except ValueError:  # nothing but stop words anywhere
        return [texts[0][:60] for texts in topics]
    # Each topic's counts: its texts' rows, weighted by how often each came.
    owner = np.repeat(np.arange(len(topics)), [len(texts) for texts in topics])
    weight = np.asarray([w for ws in weights for w in ws], dtype=np.float64)
    membership = csr_matrix((weight, (owner, np.arange(len(flat)))), shape=(len(topics), len(flat)))
    counts = (membership @ per_text).toarray().astype(np.float64)
    vocabulary = vectorizer.get_feature_names_out()
    words = counts.sum(axis=1, keepdims=True)
    tf = counts / np.maximum(words, 1)
    idf = np.log(1 + words.mean() / np.maximum(counts.sum(axis=0), 1))
    scores = tf * idf
    labels = []
    for row, texts in zip(scores, topics, strict=True):
        chosen = [vocabulary[i] for i in np.argsort(-row, kind="stable")[:terms] if row[i] > 0]
        labels.append(" · ".join(chosen) if chosen else texts[0][:60])
    return labels
