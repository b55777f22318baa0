"""The FAQ index: dense (FAISS) + lexical (BM25) retrieval over every phrasing of every entry.

Each entry contributes its phrasings (question, alternates; the answer only where TEXT_WEIGHTS
gives it a weight); a query's score for an entry is its best text match in the dense space (the
plain encoder's score), blended with its entry's centroid only where the knowledge base's own
alternates prove that helps (`knowledge.blending`), plus an optional weighted BM25 term. The
dense space is the base sentence embedding passed through a linear map *learned from the
alternates* (within-entry covariance normalisation): the admin's paraphrases tell us which
directions of the embedding space vary within one question and which tell questions apart.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from knowledge.blending import BlendChoice, BlendReason, choose_blend
from knowledge.passages import passage_sentences
from knowledge.policy import Decision, Hit, IntentSignal, PolicyThresholds, decide
from knowledge.questions import Question
from knowledge.records import FaqEntry
from knowledge.wording import Wording

__all__ = ["Decision", "FaqIndex", "Hit", "PolicyThresholds", "RetrievalConfig"]

# Exact search up to this many vectors, IVF above (docs/BENCHMARKS.md, FAQ section). Exact p99 grows
# linearly (4.9 ms at 37.6k real embeddings, 16.7 ms at 100k): small next to a message's NLU time, and
# exact. IVF answers in well under a millisecond with recall@1 0.98 against exact on real embeddings, but
# its first build trains the inverted lists (38 s at 100k vectors on one core; reloads then reuse them,
# see `build_ivf`): a process must be able to start in seconds, so exact search holds while its latency
# is tolerable.
EXACT_LIMIT = 100_000
# Answers are not embedded (weight 0), by cross-validation over whole StackFAQ threads (bench.faq.cv,
# docs/BENCHMARKS.md): answers at 0.85 helped on the threads they were tuned on and lost to the question alone
# on the others (issue 17), and the answer weight and blend chosen on some folds fell below the question alone
# on a held-out fold. A kind weighted 0 is not embedded at all (`entry_texts`).
# An article passage matches on its whole text (`FaqEntry.body`) and on each of its sentences: customers ask about
# one fact of a section ("how long can a post be"), which its sentence states more sharply than the whole passage
# (python -m bench.helpcenter: the article ranked first for 72 % of questions on passages alone, 79 % with sentences).
TEXT_WEIGHTS = {"question": 1.0, "alternate": 1.0, "answer": 0.0, "passage": 1.0, "sentence": 1.0}
# What every index saved before TEXT_WEIGHTS was recorded beside it embedded (see `FaqIndex.load`).
_SAVED_BEFORE_WEIGHTS = {"question": 1.0, "alternate": 1.0, "answer": 0.85}


@dataclass
class IndexVersion:
    content_hash: str
    entries: int
    built_at: float
    index_type: str

    @property
    def short(self) -> str:
        return self.content_hash[:12]

    def to_dict(self) -> dict:
        return {**asdict(self), "version": self.short,
                "built_at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.built_at))}


def content_hash(entries: list[FaqEntry]) -> str:
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.id):
        digest.update(entry.content_hash().encode())
    return digest.hexdigest()


def _entry_rows(entries: list[FaqEntry]):
    """(entry index, kind, text) for every text of every entry, embedded or not."""
    for i, entry in enumerate(entries):
        yield i, "question", entry.question
        for alternate in entry.alternates:
            yield i, "alternate", alternate
        yield i, "answer", entry.answer
        if entry.body:
            yield i, "passage", entry.body
            for sentence in passage_sentences(entry):
                yield i, "sentence", sentence


def embedded_rows(entries: list[FaqEntry]) -> list[tuple[int, str, str]]:
    """(entry index, kind, text) of every text that is embedded, in the index's row order.

    A kind weighted 0 in TEXT_WEIGHTS is not embedded at all: it neither matches a query nor
    moves its entry's centroid, and a reload spends no time encoding it.
    """
    return [(i, kind, text) for i, kind, text in _entry_rows(entries) if TEXT_WEIGHTS[kind] > 0]


def entry_texts(entries: list[FaqEntry]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, entry index per text, weight per text) of the texts that are embedded (`embedded_rows`)."""
    rows = embedded_rows(entries)
    return ([text for _, _, text in rows], np.asarray([i for i, _, _ in rows], dtype=np.int64),
            np.asarray([TEXT_WEIGHTS[kind] for _, kind, _ in rows], dtype=np.float32))


def learn_adapter(vectors: np.ndarray, groups: np.ndarray, strength: float) -> np.ndarray | None:
    """Within-group covariance normalisation: W = (S_w + a I)^(-1/2), with a = trace(S_w)/d / strength.

    Returns None when there are too few paraphrase groups to estimate anything.
    """
    centred = []
    for g in np.unique(groups):
        members = vectors[groups == g]
        if len(members) >= 2:
            centred.append(members - members.mean(axis=0))
    if len(centred) < 3:
        return None
    stacked = np.concatenate(centred)
    scatter = stacked.T @ stacked / len(stacked)
    dim = scatter.shape[0]
    ridge = np.trace(scatter) / dim / max(strength, 1e-6)
    eigvals, eigvecs = np.linalg.eigh(scatter + ridge * np.eye(dim))
    transform = eigvecs @ np.diag(eigvals ** -0.5) @ eigvecs.T
    return (transform / np.linalg.norm(transform, ord=2)).astype(np.float32)


def apply_adapter(vectors: np.ndarray, adapter: np.ndarray | None) -> np.ndarray:
    if adapter is None:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    mapped = vectors @ adapter
    return np.ascontiguousarray(mapped / np.clip(np.linalg.norm(mapped, axis=1, keepdims=True), 1e-12, None),
                                dtype=np.float32)


def build_faiss(vectors: np.ndarray, previous=None):
    """Exact inner product for small sets; IVF (inverted lists) above EXACT_LIMIT vectors.

    `previous`: the FAISS index of the version being replaced; its trained IVF lists are reused
    when they still fit (see `build_ivf`).
    """
    import faiss

    n, dim = vectors.shape
    if n <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index, "flat-ip"
    return build_ivf(vectors, previous=previous)


def ivf_lists(n: int) -> int:
    """4·sqrt(n) lists, never more than there are vectors: k-means cannot train more clusters than points, and
    a base shrunk below 16 vectors (only possible with a very low EXACT_LIMIT) would fail to build."""
    return max(1, min(n, int(4 * np.sqrt(n))))


def build_ivf(vectors: np.ndarray, nprobe: int = 24, previous=None):
    """Approximate inner-product index: 4·sqrt(n) inverted lists, `nprobe` of them visited per query.

    Training the lists (k-means) is most of the build: 38 s at 100k vectors, 5 min at 1M on
    2 cores. A reload changes a few entries of a big base, which leaves the clusters where
    they were, so the previous version's trained lists are reused while its list count is
    within a factor of two of this size's; only the vectors are (re)assigned to them.
    """
    import faiss

    n, dim = vectors.shape
    nlist = ivf_lists(n)
    reusable = (isinstance(previous, faiss.IndexIVFFlat) and previous.d == dim and previous.is_trained
                and previous.metric_type == faiss.METRIC_INNER_PRODUCT and nlist / 2 <= previous.nlist <= nlist * 2)
    if reusable:
        nlist = previous.nlist
        quantizer = faiss.clone_index(previous.quantizer)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        index.train(vectors[rng.choice(n, size=min(n, nlist * 40), replace=False)])
    index.add(vectors)
    index.nprobe = nprobe
    return index, f"ivf{nlist}-flat (nprobe {nprobe})"


@dataclass
class RetrievalConfig:
    # Share of similarity to the mean of an entry's phrasings (question and alternates). None: chosen per knowledge
    # base when it is built (`knowledge.blending`): 0, the plain encoder's ranking, unless the FAQ's own alternates
    # prove a blend helps. A fixed 0.5 lost to the plain encoder on held-out StackFAQ threads, while
    # BANKING77-as-FAQ, whose alternates prove it, keeps its lift (docs/BENCHMARKS.md).
    centroid_weight: float | None = None
    adapter_strength: float | None = None  # within-entry covariance normalisation; None: off
    bm25_weight: float = 0.0  # BM25 did not help on our benchmarks (docs/BENCHMARKS.md); opt-in
    candidates: int = 64  # dense text hits examined per query before grouping by entry


class FaqIndex:
    """An immutable, searchable snapshot of one knowledge-base version."""

    def __init__(self, entries: list[FaqEntry], base_vectors: np.ndarray, config: RetrievalConfig,
                 thresholds: PolicyThresholds | None = None, built_at: float | None = None,
                 previous: FaqIndex | None = None):
        self.entries = entries
        self.config = config
        rows = embedded_rows(entries)  # once: cutting passages into sentences is most of the work on a help center
        self.owners = np.asarray([i for i, _, _ in rows], dtype=np.int64)
        self.weights = np.asarray([TEXT_WEIGHTS[kind] for _, kind, _ in rows], dtype=np.float32)
        kinds = [kind for _, kind, _ in rows]
        groups = np.where(np.asarray([kind == "answer" for kind in kinds], dtype=bool), -1, self.owners)
        self.adapter = (learn_adapter(base_vectors[groups >= 0], groups[groups >= 0], config.adapter_strength)
                        if config.adapter_strength else None)
        self.vectors = apply_adapter(base_vectors, self.adapter)
        self.sums = np.zeros((len(entries), self.vectors.shape[1]), dtype=np.float32)
        np.add.at(self.sums, self.owners, self.vectors)
        self.centroids = _normalise(self.sums)
        # Only FAQ entries blend in their centroid: a passage's rows are its parts (sentences), not paraphrases of
        # one question, and their mean says less than the best of them.
        self.blended = np.asarray([entry.article is None for entry in entries], dtype=bool)
        self.faiss, index_type = build_faiss(self.vectors, previous.faiss if previous else None)
        self.blend = (choose_blend(self, rows) if config.centroid_weight is None
                      else BlendChoice(config.centroid_weight, BlendReason.SET))
        self.bm25 = _build_bm25(entries) if config.bm25_weight > 0 else None
        # The intent model's out-of-scope flag counts only against a knowledge base linked to its intents: a model
        # trained for another domain must not veto answers from articles it knows nothing of.
        self.linked_intents = frozenset(intent for entry in entries for intent in entry.intents)
        # What the version holds, as `kb build` and GET /admin/faq report it (set by whoever read the source).
        self.summary: dict = {"faq_entries": sum(e.article is None for e in entries),
                              "passages": sum(e.article is not None for e in entries)}
        self.thresholds = thresholds or PolicyThresholds()
        self.wording: Wording | None = None  # the company's texts for the bot, part of this version (`with_source`)
        # The questions the thresholds were chosen on, each with what the intent model said about it (None
        # without a model): kept so the wiring can calibrate the escalation line without predicting them again.
        self.calibration: list[tuple[Question, IntentSignal | None]] = []
        self._entries_hash = content_hash(entries)  # the version's hash until `with_source` mixes the wording in
        self.version = IndexVersion(self._entries_hash, len(entries), built_at or time.time(), index_type)

    def with_source(self, summary: dict, wording: Wording | None) -> None:
        """What this version holds besides its entries, from the source it was read from: what it counts, as
        `kb build` and GET /admin/faq report it, and the company's wording (`knowledge.wording`), which the
        version's hash covers, so a change of wording alone is a new version that every worker takes up."""
        self.summary = summary
        self.wording = wording
        if wording:
            digest = hashlib.sha256(self._entries_hash.encode())  # from the entries' hash: calling again is harmless
            digest.update(json.dumps(wording, sort_keys=True, ensure_ascii=False, default=str).encode())
            self.version = replace(self.version, content_hash=digest.hexdigest())

    @property
    def calibration_texts(self) -> list[str]:
        return [question.text for question, _ in self.calibration]

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def centroid_weight(self) -> float:
        """The blend this index scores with (`RetrievalConfig.centroid_weight`, or chosen when it was built)."""
        return self.blend.weight

    def search_vectors(self, query_vectors: np.ndarray, queries: list[str], top_k: int = 5,
                       exclude_rows: list[set[int]] | None = None) -> list[list[Hit]]:
        """Best entries for each query, given its base embedding."""
        mapped = apply_adapter(query_vectors, self.adapter)
        dense = self.dense_scores(mapped, top_k, exclude_rows)
        lexical = self._bm25_scores(queries) if self.bm25 is not None else None
        results = []
        for q, best in enumerate(dense):
            best = self.blend_scores(best, mapped[q], self.centroid_weight, exclude_rows[q] if exclude_rows else ())
            if lexical is not None:
                for entry in list(best):
                    best[entry] += self.config.bm25_weight * lexical[q][entry]
            results.append(_best_per_answer(self.entries, best, top_k))
        return results

    def dense_scores(self, mapped: np.ndarray, top_k: int, exclude_rows: list[set[int]] | None = None
                     ) -> list[dict[int, float]]:
        """Each query's best weighted text similarity per candidate entry (`mapped`: queries in the index's space)."""
        # Rows hidden from a question (calibration) must not use up the candidates: a large article hidden whole
        # would otherwise leave nothing to rank.
        hidden = max((len(rows) for rows in exclude_rows), default=0) if exclude_rows else 0
        n_candidates = min(len(self.owners), max(self.config.candidates, top_k * 8) + hidden)
        sims, rows = self.faiss.search(mapped, n_candidates)
        out = []
        for q in range(len(mapped)):
            best: dict[int, float] = {}
            skip = exclude_rows[q] if exclude_rows else ()
            for sim, row in zip(sims[q], rows[q], strict=True):
                if row < 0 or row in skip:
                    continue
                entry = int(self.owners[row])
                score = float(sim) * float(self.weights[row])
                if score > best.get(entry, -np.inf):
                    best[entry] = score
            out.append(best)
        return out

    def blend_scores(self, best: dict[int, float], query: np.ndarray, weight: float, skip=()) -> dict[int, float]:
        """`best` with each FAQ entry's score blended with its centroid's similarity to `query` (weight 0: as is)."""
        if weight <= 0 or not best:
            return best
        # Several paraphrases agreeing is stronger evidence than one happening to match, where the alternates show it.
        candidates = np.fromiter((e for e in best if self.blended[e]), dtype=np.int64)
        centroids = self.centroids[candidates] if not skip else self._centroids_without(candidates, skip)
        out = dict(best)
        for entry, c in zip(candidates, centroids @ query, strict=True):
            out[int(entry)] = (1 - weight) * best[int(entry)] + weight * float(c)
        return out

    def _centroids_without(self, entries: np.ndarray, skip) -> np.ndarray:
        """Centroids of `entries` leaving out the rows in `skip` (leave-one-out calibration)."""
        sums = self.sums[entries].copy()
        position = {int(e): i for i, e in enumerate(entries)}
        for row in skip:
            i = position.get(int(self.owners[row]))
            if i is not None:
                sums[i] -= self.vectors[row]
        return _normalise(sums)

    def _bm25_scores(self, queries: list[str]) -> list[np.ndarray]:
        import bm25s

        tokens = bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False)
        out = []
        for words in tokens:
            scores = self.bm25.get_scores(words) if words else np.zeros(len(self.entries))
            top = float(np.max(scores)) if len(scores) else 0.0
            out.append(np.asarray(scores) / top if top > 0 else np.zeros(len(self.entries)))
        return out

    def decide(self, hits: list[Hit], signal: IntentSignal | None = None, query: str | None = None) -> Decision:
        """The answer rule (`knowledge.policy`) with this version's calibrated bars."""
        return decide(hits, signal, self.thresholds, self.version.short, query)

    def save(self, folder: Path, base_vectors: np.ndarray, encoder: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "entries.jsonl").write_text(
            "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in self.entries), encoding="utf-8")
        np.save(folder / "base_vectors.npy", base_vectors)
        (folder / "index.json").write_text(json.dumps({
            "version": self.version.to_dict(), "config": asdict(self.config), "encoder": encoder,
            "text_weights": TEXT_WEIGHTS, "summary": self.summary, "blend": self.blend.to_dict(),
            "thresholds": self.thresholds.to_dict(), "wording": self.wording}, indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path) -> FaqIndex:
        meta = json.loads((folder / "index.json").read_text())
        entries = [FaqEntry.from_dict(d)
                   for d in map(json.loads, (folder / "entries.jsonl").read_text(encoding="utf-8").splitlines())]
        base = _embedded_now(entries, np.load(folder / "base_vectors.npy"),
                             meta.get("text_weights", _SAVED_BEFORE_WEIGHTS))
        index = cls(entries, base, RetrievalConfig(**meta["config"]),
                    PolicyThresholds.from_dict(meta["thresholds"]), meta["version"]["built_at"])
        index.with_source(meta.get("summary", index.summary), meta.get("wording"))
        return index


def _embedded_now(entries: list[FaqEntry], base: np.ndarray, saved: dict[str, float]) -> np.ndarray:
    """The rows of a saved index's vectors that the current TEXT_WEIGHTS embeds.

    An index saved with other weights (answers embedded, before issue 17) still loads: its extra rows
    are dropped. One that lacks a kind now embedded has to be built again.
    """
    kinds = [kind for _, kind, _ in _entry_rows(entries) if saved.get(kind, 0) > 0]
    present = {kind for _, kind, _ in _entry_rows(entries)}
    missing = {kind for kind, weight in TEXT_WEIGHTS.items() if weight > 0 and saved.get(kind, 0) <= 0
               and kind in present}
    if len(kinds) != len(base) or missing:
        raise ValueError(f"the saved index's vectors do not match its entries ({len(base)} vectors, "
                         f"kinds missing: {sorted(missing) or 'none'}): build it again with `frontdesk faq build`")
    return base[[i for i, kind in enumerate(kinds) if TEXT_WEIGHTS[kind] > 0]]


def _best_per_answer(entries: list[FaqEntry], scores: dict[int, float], top_k: int) -> list[Hit]:
    """The `top_k` best answers, each article once: its best passage stands for it.

    Several passages of one article are one answer to the customer; counted apart, they would
    crowd out other articles from suggestions and make every article look ambiguous to the margin.
    """
    out: list[Hit] = []
    seen: set[str] = set()
    for entry_index, score in sorted(scores.items(), key=lambda kv: -kv[1]):
        entry = entries[entry_index]
        if entry.answer_id in seen:
            continue
        seen.add(entry.answer_id)
        out.append(Hit(entry, round(float(score), 5)))
        if len(out) == top_k:
            break
    return out


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.clip(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12, None)


def _build_bm25(entries: list[FaqEntry]):
    import bm25s

    corpus = [" ".join([e.question, *e.alternates, e.body or e.answer]) for e in entries]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    return retriever
