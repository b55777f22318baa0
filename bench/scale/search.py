"""bench.scale's search part: one-query-at-a-time search over 100k and 1M article passages, as the product indexes them.

A passage is indexed as several rows (knowledge.index.embedded_rows): its heading path, its heading path with
its text, and each of its sentences. The rows per passage here follow a real help center's: each synthetic
passage draws its row count from the distribution of Mastodon's documentation (../shared/data) as the product
cuts it, so 1M passages are about 5.5M rows. The vectors are synthetic: normalised Gaussian 384-d vectors
(MiniLM's size), which have no cluster structure, the worst case for IVF (bench.faq's `real` part measures IVF on
real embeddings); a query is a stored row plus noise, as in bench.faq's latency part.

- 100k passages: `knowledge.index.FaqIndex` itself, built from synthetic passage entries whose text cuts into
  exactly the drawn number of rows, and searched with `search_vectors` (grouping rows by passage and article).
- 1M passages: a FaqIndex would hold every row three times over (the caller's vectors, the index's own copy,
  FAISS's copy) plus a million entry objects, beyond this machine's memory, so the index is built by the
  product's lowest-level builder recipe for row vectors, `build_ivf` (same list count `ivf_lists`, same training
  sample, same nprobe), with the rows added in chunks so they are held once; searched with FAISS directly. At
  100k both are built, and their answers compared, to show the recipe is the product's.
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from bench.scale.procmem import load_average

SEED = 11
DIM = 384
CHUNK = 100_000  # rows generated at a time (regenerated from their seed, never all held twice)
QUERIES, RECALL_SAMPLE, NOISE = 500, 200, 0.05
TRAIN_PER_LIST = 40  # build_ivf trains on nlist * 40 sampled rows


def rows_per_passage() -> tuple[np.ndarray, str]:
    """Rows of each passage of Mastodon's help center, as the product indexes it."""
    from bench._setup import WORK, require_data
    from bench.scale.helpcenter import MASTODON
    from knowledge.index import embedded_rows
    from knowledge.loading import load_knowledge

    require_data()
    folder = WORK / "scale-mastodon"  # a knowledge folder whose articles/ links to the data (nothing copied)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "articles").exists():
        (folder / "articles").symlink_to(MASTODON)
    entries = load_knowledge(folder).entries
    counts = np.bincount([i for i, _, _ in embedded_rows(entries)], minlength=len(entries))
    return counts, f"Mastodon's help center: {len(entries)} passages, {counts.sum()} rows"


def chunk(i: int, total: int) -> np.ndarray:
    size = min(CHUNK, total - i * CHUNK)
    vectors = np.random.default_rng([SEED, i]).standard_normal((size, DIM), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def gather(rows: np.ndarray, total: int) -> np.ndarray:
    """The vectors of `rows` (any order), regenerating only the chunks that hold them."""
    out = np.empty((len(rows), DIM), dtype=np.float32)
    for c in np.unique(rows // CHUNK):
        mask = rows // CHUNK == c
        out[mask] = chunk(int(c), total)[rows[mask] - c * CHUNK]
    return out


def queries_for(total: int) -> np.ndarray:
    rng = np.random.default_rng(SEED + 1)
    picked = gather(rng.choice(total, QUERIES), total)
    noisy = picked + NOISE * rng.standard_normal(picked.shape, dtype=np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def passage_entries(counts: np.ndarray):
    """Synthetic article passages (8 to an article) whose text the product cuts into exactly `counts` rows:
    the heading path; the body, when there is one; one row per sentence of it."""
    from knowledge.records import ArticleRef, FaqEntry

    entries = []
    for i, rows in enumerate(counts.tolist()):
        article, section = divmod(i, 8)
        heading = f"Article {article} › Section {section}"
        sentences = " ".join(f"Sentence number {s} of this passage says something." for s in range(rows - 2))
        body = f"{heading}\n{sentences or 'See below.'}" if rows >= 2 else ""  # 'See below.': too short a sentence
        entries.append(FaqEntry(f"a{article}#s{section}", heading, "An answer.", body=body,
                                article=ArticleRef(f"a{article}", f"Article {article}", f"Section {section}")))
    return entries


def timed(search, queries: np.ndarray) -> tuple[float, float]:
    times = []
    for q in queries:
        started = time.perf_counter()
        search(q[None, :])
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def ivf_bytes(index) -> int:
    """What an IVF-flat index holds: each row's vector and id, and the list centroids."""
    return int(index.ntotal * (index.code_size + 8) + index.nlist * index.d * 4)


def rss_bytes() -> int:
    status = open("/proc/self/status").read()  # noqa: SIM115 - read whole at once
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


def chunked_ivf(total: int, queries: np.ndarray | None = None):
    """build_ivf's index over `total` generated rows, added a chunk at a time; also the exact best row of each of
    `queries` (computed while the chunks pass by). Returns (index, kind, train_s, add_s, exact rows)."""
    import faiss

    from knowledge.index import build_ivf, ivf_lists

    nprobe = inspect.signature(build_ivf).parameters["nprobe"].default
    nlist = ivf_lists(total)
    sample = np.random.default_rng(0).choice(total, size=min(total, nlist * TRAIN_PER_LIST), replace=False)
    train = gather(sample, total)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    started = time.perf_counter()
    index.train(train)
    train_s = time.perf_counter() - started
    del train
    add_s, best, best_sim = 0.0, None, None
    for c in range((total + CHUNK - 1) // CHUNK):
        vectors = chunk(c, total)
        started = time.perf_counter()
        index.add(vectors)
        add_s += time.perf_counter() - started
        if queries is not None:
            sims = queries @ vectors.T
            top, top_sim = sims.argmax(axis=1) + c * CHUNK, sims.max(axis=1)
            better = top_sim > best_sim if best_sim is not None else np.ones(len(queries), dtype=bool)
            best = np.where(better, top, best) if best is not None else top
            best_sim = np.where(better, top_sim, best_sim) if best_sim is not None else top_sim
    index.nprobe = nprobe
    return index, f"ivf{nlist}-flat (nprobe {nprobe})", train_s, add_s, best


def product_index(passages: int, counts: np.ndarray) -> dict:
    """FaqIndex over `passages` synthetic passages: build, search_vectors latency, recall@1, memory."""
    import faiss

    import knowledge.index as kindex

    rng = np.random.default_rng(SEED)
    drawn = rng.choice(counts, passages)
    entries = passage_entries(drawn)
    total = int(drawn.sum())
    base = np.concatenate([chunk(c, total) for c in range((total + CHUNK - 1) // CHUNK)])
    faiss_time = {}

    def timed_build(vectors, previous=None):  # how much of FaqIndex's build is the FAISS index
        started = time.perf_counter()
        built = original(vectors, previous)
        faiss_time["s"] = time.perf_counter() - started
        return built

    original, kindex.build_faiss = kindex.build_faiss, timed_build
    rss_before = rss_bytes()
    faiss.omp_set_num_threads(faiss.omp_get_max_threads())
    started = time.perf_counter()
    try:
        index = kindex.FaqIndex(entries, base, kindex.RetrievalConfig())
    finally:
        kindex.build_faiss = original
    build_s = time.perf_counter() - started
    assert len(index.owners) == total, "the synthetic passages did not cut into the drawn rows"
    queries = queries_for(total)
    faiss.omp_set_num_threads(1)
    p50, p99 = timed(lambda q: index.search_vectors(q, [""], top_k=5), queries)
    f50, f99 = timed(lambda q: index.faiss.search(q, index.config.candidates), queries)
    sample = queries[:RECALL_SAMPLE]
    exact = index.owners[(sample @ base.T).argmax(axis=1)]
    found = [hits[0].entry.id if hits else None for hits in index.search_vectors(sample, [""] * len(sample))]
    arrays = sum(a.nbytes for a in (index.vectors, index.sums, index.centroids, index.owners, index.weights))
    faiss_bytes = ivf_bytes(index.faiss) if hasattr(index.faiss, "nlist") else index.faiss.ntotal * DIM * 4
    out = {"level": "FaqIndex (search_vectors)", "passages": passages, "rows": total,
           "rows_per_passage": total / passages, "index": index.version.index_type, "build_s": build_s,
           "faiss_build_s": faiss_time["s"], "p50_ms": p50, "p99_ms": p99, "faiss_p50_ms": f50, "faiss_p99_ms": f99,
           "recall_at_1": float(np.mean([f == entries[e].id for f, e in zip(found, exact, strict=True)])),
           "faiss_bytes": faiss_bytes, "index_arrays_bytes": arrays,
           "rss_growth_bytes": rss_bytes() - rss_before,
           "bytes_per_passage": faiss_bytes / passages, "all_bytes_per_passage": (faiss_bytes + arrays) / passages}
    out["_faiss"] = index.faiss  # compared with the chunked build by `run`, then dropped
    return out


def chunked_level(passages: int, counts: np.ndarray, compare=None) -> dict:
    """build_ivf's recipe over the rows of `passages` passages, chunk by chunk; FAISS search latency and recall."""
    import faiss

    drawn = np.random.default_rng(SEED).choice(counts, passages)
    total = int(drawn.sum())
    queries = queries_for(total)
    faiss.omp_set_num_threads(faiss.omp_get_max_threads())
    rss_before = rss_bytes()
    index, kind, train_s, add_s, exact = chunked_ivf(total, queries[:RECALL_SAMPLE])
    faiss.omp_set_num_threads(1)
    p50, p99 = timed(lambda q: index.search(q, 64), queries)
    _, found = index.search(queries[:RECALL_SAMPLE], 1)
    out = {"level": "build_ivf recipe, FAISS search", "passages": passages, "rows": total,
           "rows_per_passage": total / passages, "index": kind, "build_s": train_s + add_s, "train_s": train_s,
           "add_s": add_s, "p50_ms": p50, "p99_ms": p99, "recall_at_1": float(np.mean(found[:, 0] == exact)),
           "faiss_bytes": ivf_bytes(index), "rss_growth_bytes": rss_bytes() - rss_before,
           "bytes_per_passage": ivf_bytes(index) / passages}
    if compare is not None:  # the product's own build of the same rows: do the two answer alike?
        _, theirs = compare.search(queries, 10)
        _, ours = index.search(queries, 10)
        out["same_top10_as_build_ivf"] = float(np.mean([set(a) == set(b) for a, b in zip(theirs, ours, strict=True)]))
    return out


def mem_available() -> int:
    for line in open("/proc/meminfo"):  # noqa: SIM115 - a short file, read once
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def run(sizes: tuple[int, ...] = (100_000, 1_000_000)) -> dict:
    counts, source = rows_per_passage()
    out: dict = {"rows_source": source, "rows_per_passage_real": float(counts.mean()), "levels": []}
    for passages in sizes:
        if passages <= 100_000:
            level = product_index(passages, counts)
            product_faiss = level.pop("_faiss")
            print(level, flush=True)
            out["levels"].append(level)
            check = chunked_level(passages, counts, compare=product_faiss)
            del product_faiss
        else:
            need = int(passages * counts.mean() * (DIM * 4 + 8) * 1.15)
            if mem_available() < need + 2 * 1024**3:  # never push a shared machine into swapping or the OOM killer
                out["levels"].append({"passages": passages, "skipped": f"needs about {need / 1e9:.1f} GB, "
                                      f"{mem_available() / 1e9:.1f} GB available"})
                continue
            check = chunked_level(passages, counts)
        check["load_average"] = load_average()
        print(check, flush=True)
        out["levels"].append(check)
    return out
