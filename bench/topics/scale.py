"""Clustering time at 100k messages: `knowledge.topics.group_texts` as `Gaps` calls it, on CLINC150's questions.

- Embedding: every distinct question of train.csv and val.csv (about 18k) embedded once with the packaged
  MiniLM (`knowledge.embedder.Embedder`, what retrieval stores per message), timed apart: in the product each
  message's vector comes from retrieval, so grouping embeds nothing.
- Weighted: those distinct texts with weights summing to 100k messages (each text at least once, the rest spread
  at random): what `Gaps` hands over when customers repeat themselves.
- Distinct: 100k different vectors, each a random question's vector plus Gaussian noise scaled so that it keeps a
  cosine of about `NOISY_COSINE` with its source; the texts are the source questions' words. Isotropic noise is
  not a paraphrase (it moves a vector away from every other question alike), so this row measures time on 100k
  distinct vectors, and its ARI is only a sanity check.
- Exact: `EXACT_LIMIT` distinct questions, the largest set clustered without k-means cells.
- Variant (not the product), on the weighted and distinct inputs: the same k-means cells, but two cells are
  compared by the average cosine between their members (the dot product of their un-normalised mean vectors,
  which is exactly what average linkage over the members would use) instead of the cosine between their
  normalised centroids, which is larger (a cell's mean vector is shorter than 1) and so merges more at the same
  `DISTANCE`. Its time is clustering alone (no labels).

- Density check: the same DISTANCE values as the bot part's sweep, on all 150 CLINC150 intents at once (closer
  neighbours than 20 intents drawn from five domains): the exact path on the `EXACT_LIMIT` sample, and the cell
  path (product and variant) on every distinct question. It holds the evaluation intents' questions too, so it
  chooses nothing: it shows how the best DISTANCE moves when topics crowd.

ARI here is against the questions' CLINC150 intents (out-of-scope questions left out), over distinct texts or
vectors; texts in no topic count as topics of their own.
"""

from __future__ import annotations

import random
import statistics
import time

import numpy as np

from bench.topics.data import SEED, all_clinc_texts
from knowledge.topics import EXACT_LIMIT, group_texts

NOISY_COSINE = 0.8


def _timed(fn, repeats: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result


def _ari(groups, labels: list[str]) -> float:
    assigned = np.arange(len(labels)) + len(groups)  # texts in no topic: one each
    for number, group in enumerate(groups):
        assigned[list(group.members)] = number
    return _ari_of(assigned, labels)


def _ari_of(assigned, labels: list[str]) -> float:
    from sklearn.metrics import adjusted_rand_score

    keep = [i for i, label in enumerate(labels) if label != "oos"]
    return round(float(adjusted_rand_score([labels[i] for i in keep], assigned[keep])), 4)


def _row(name: str, texts: int, messages: int, times: list[float], groups, labels, distance: float) -> dict:
    row = {"set": name, "distinct_texts": texts, "messages": messages, "distance": distance,
           "seconds": [round(t, 2) for t in times], "median_s": round(statistics.median(times), 2),
           "topics": len(groups), "ari_vs_intents": _ari(groups, labels)}
    print(f"-- scale {name}: {row}", flush=True)
    return row


def mean_cosine_cells(vectors: np.ndarray, weights, distance: float, exact_limit: int = EXACT_LIMIT) -> np.ndarray:
    """The variant: `knowledge.topics.cluster`'s cells, linked by their members' average cosine."""
    import faiss
    from sklearn.cluster import AgglomerativeClustering

    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    weights = np.ones(len(vectors)) if weights is None else np.asarray(weights, dtype=np.float64)
    cells_wanted = min(exact_limit, max(64, len(vectors) // 40))
    kmeans = faiss.Kmeans(vectors.shape[1], cells_wanted, niter=12, seed=0, spherical=True, verbose=False,
                          max_points_per_centroid=64)
    kmeans.train(vectors)
    cells = kmeans.index.search(vectors, 1)[1][:, 0]
    used, cells = np.unique(cells, return_inverse=True)
    sums = np.zeros((len(used), vectors.shape[1]))
    np.add.at(sums, cells, vectors * weights[:, None])
    means = sums / np.bincount(cells, weights=weights)[:, None]
    gaps = np.clip(1.0 - means @ means.T, 0.0, 2.0)
    np.fill_diagonal(gaps, 0.0)
    model = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                    distance_threshold=distance)
    return model.fit_predict(gaps)[cells]


def _variant(name: str, vectors, weights, labels, distance: float, repeats: int) -> dict:
    times, assigned = _timed(lambda: mean_cosine_cells(vectors, weights, distance), repeats)
    row = {"set": f"{name}, variant", "distinct_texts": len(vectors),
           "messages": int(np.sum(weights)) if weights is not None else len(vectors), "distance": distance,
           "seconds": [round(t, 2) for t in times], "median_s": round(statistics.median(times), 2),
           "topics": len(np.unique(assigned)), "ari_vs_intents": _ari_of(assigned, labels)}
    print(f"-- scale {row['set']}: {row}", flush=True)
    return row


def density(texts, vectors, labels, picked, sweep) -> dict:
    out = {}
    for distance in sweep:
        exact = group_texts([texts[i] for i in picked], vectors[picked], None, distance=distance)
        cells = group_texts(texts, vectors, None, distance=distance)
        variant = mean_cosine_cells(vectors, None, distance)
        out[str(distance)] = {"exact_topics": len(exact), "exact_ari": _ari(exact, [labels[i] for i in picked]),
                              "cells_topics": len(cells), "cells_ari": _ari(cells, labels),
                              "variant_topics": len(np.unique(variant)), "variant_ari": _ari_of(variant, labels)}
        print(f"-- density {distance}: {out[str(distance)]}", flush=True)
    return out


def run_scale(embedder, distances: list[float], messages: int = 100_000, repeats: int = 2,
              sweep: tuple[float, ...] = ()) -> dict:
    """Every input at the first distance (the shipped default); the real-text inputs at the others too."""
    rows = all_clinc_texts()
    texts, labels = [t for t, _ in rows], [label for _, label in rows]
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    embed_s = time.perf_counter() - started
    print(f"-- scale: embedded {len(texts)} texts in {embed_s:.1f} s", flush=True)
    rng = np.random.default_rng(SEED)
    out: dict = {"embedding": {"texts": len(texts), "seconds": round(embed_s, 1),
                               "texts_per_s": round(len(texts) / embed_s, 1)}, "rows": []}
    # Weighted: the distinct texts, repeated up to `messages`. Exact: the largest set without cells.
    weights = 1 + rng.multinomial(messages - len(texts), np.full(len(texts), 1 / len(texts)))
    picked = sorted(random.Random(SEED).sample(range(len(texts)), EXACT_LIMIT))
    for distance in distances:
        times, groups = _timed(lambda d=distance: group_texts(texts, vectors, weights, distance=d), repeats)
        out["rows"].append(_row("weighted", len(texts), int(weights.sum()), times, groups, labels, distance))
        out["rows"].append(_variant("weighted", vectors, weights, labels, distance, repeats))
        times, groups = _timed(lambda d=distance: group_texts([texts[i] for i in picked], vectors[picked], None,
                                                              distance=d), repeats)
        out["rows"].append(_row("exact", EXACT_LIMIT, EXACT_LIMIT, times, groups, [labels[i] for i in picked],
                                distance))
    out["density"] = density(texts, vectors, labels, picked, sweep)

    # Distinct: noisy copies, at the shipped default only (a minute a distance).
    distance = distances[0]
    dim = vectors.shape[1]
    sigma = float(np.sqrt((1 / NOISY_COSINE ** 2 - 1) / dim))
    source = rng.integers(0, len(texts), messages)
    noisy = vectors[source] + rng.normal(0.0, sigma, (messages, dim)).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    cosine = float(np.mean(np.sum(noisy * vectors[source], axis=1)))
    noisy_texts = [texts[i] for i in source]
    times, groups = _timed(lambda: group_texts(noisy_texts, noisy, None, distance=distance), repeats)
    row = _row("distinct", messages, messages, times, groups, [labels[i] for i in source], distance)
    row["noise_sigma"], row["mean_cosine_to_source"] = round(sigma, 5), round(cosine, 3)
    out["rows"].append(row)
    out["rows"].append(_variant("distinct", noisy, None, [labels[i] for i in source], distance, repeats))
    return out
