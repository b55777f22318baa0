"""The serving knowledge base: search, answer, reload without dropping a question, restore.

A reload reads and validates the source, builds the new index *beside* the serving one
(re-embedding only what changed), and swaps one reference. Every search reads that
reference once, so a query sees the old version or the new one, never a mix, and never
waits for a build. A source with errors changes nothing and returns every problem.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from knowledge.builder import build_index
from knowledge.calibration import DEFAULT_TARGET, SEARCH_DEPTH, Classifier
from knowledge.embedder import Embedder, EmbeddingCache
from knowledge.index import FaqIndex, RetrievalConfig, embedded_rows
from knowledge.loading import LoadedKnowledge, load_knowledge
from knowledge.policy import Decision, Hit, IntentSignal
from knowledge.query_encoder import QueryEncoder
from knowledge.quoting import quote
from knowledge.sources import KnowledgeBaseError, SourceProblem, questions_file, with_alternates
from nlu.batching import BatcherClosed, MicroBatcher

log = logging.getLogger(__name__)

RECENT_QUERIES = 4096  # customers' questions whose embeddings are kept for deciding them again (`answers`)


@dataclass
class ReloadResult:
    ok: bool
    version: dict | None = None
    changed: bool = False
    errors: list[SourceProblem] = field(default_factory=list)
    seconds: float = 0.0
    embedded_texts: int = 0  # texts that were not in the cache

    def to_dict(self) -> dict:
        return {"ok": self.ok, "version": self.version, "changed": self.changed,
                "errors": [e.to_dict() for e in self.errors], "seconds": round(self.seconds, 3),
                "embedded_texts": self.embedded_texts}


class KnowledgeBase:
    """The FAQ a server answers from.

    `questions`: the company's development set of customer questions (`text,faq_id` CSV),
    re-read on every reload; None: the knowledge-base folder's `dev-questions.csv` when a reload
    finds one there, else generated questions (`knowledge.calibration`).
    `classify`: the intent model, so the answer rule is calibrated with the signal it will
    see. `use_intents=False` ignores the intent model altogether (retrieval alone).
    `query_encoder`: embeds customers' questions and the calibration questions in `embedder`'s place
    (`knowledge.query_encoder`); entries and passages are always embedded by `embedder`.
    `cache_seed`: vectors embedded elsewhere, read and never written (`EmbeddingCache`'s seed).
    """

    def __init__(self, source: str | Path, *, embedder: Embedder | None = None, cache_dir: str | Path | None = None,
                 cache_seed: str | Path | None = None,
                 query_encoder: QueryEncoder | None = None, config: RetrievalConfig | None = None,
                 questions: str | Path | None = None, classify: Classifier | None = None, use_intents: bool = True,
                 target_wrong_rate: float = DEFAULT_TARGET, articles_base_url: str = ""):
        self.source = Path(source)
        self.articles_base_url = articles_base_url
        self._loaded: LoadedKnowledge | None = None  # the last good read: its articles are reused while unchanged
        self._signals = _RememberedSignals()
        self.questions = Path(questions) if questions else None
        self.use_intents = use_intents
        self.classify = classify if use_intents else None
        self.target_wrong_rate = target_wrong_rate
        self.embedder = embedder or Embedder()
        self.cache = EmbeddingCache(self.embedder, cache_dir, seed=cache_seed)
        # Customers' questions (and the calibration questions standing in for them) go through the query encoder
        # when there is one: a student of `embedder` in its vector space (`knowledge.query_encoder`).
        self.query_encoder = query_encoder
        self.question_cache = (EmbeddingCache(query_encoder, Path(cache_dir) / "questions" if cache_dir else None)
                               if query_encoder is not None else self.cache)
        self.config = config or RetrievalConfig()
        self._current: FaqIndex | None = None
        self._previous: FaqIndex | None = None
        self._reload_lock = threading.Lock()  # one build at a time; searches never take it
        self.listeners: list = []  # called with the new index after every swap
        # Alternates labelled outside the FAQ files (the review inbox): entry id -> texts, read on every reload.
        self.extra_alternates: Callable[[], dict[str, list[str]]] | None = None
        # Run before the configured source is read (the wiring writes the fleet's approved entries into the
        # folder's learned.yaml: knowledge.learned); a failure is logged and the source read as it is.
        self.before_reload: Callable[[], None] | None = None
        # The latest customers' questions' embeddings: a shadow model or a topic decides the same message again
        # moments later, and must not embed it (nor hold the embedder a reply waits for) a second time.
        self._recent_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()
        # Customers' questions arrive one per message; embedding them together is several times cheaper.
        self._queries = MicroBatcher(lambda texts: list(self.encode_questions(texts)), max_batch=64,
                                     max_wait_ms=2.0, name="faq-queries")

    @property
    def index(self) -> FaqIndex:
        current = self._current
        if current is None:
            raise RuntimeError("the knowledge base is not loaded yet")
        return current

    @property
    def ready(self) -> bool:
        return self._current is not None

    def reload(self, recalibrate: bool = False, forget_previous: bool = False) -> ReloadResult:
        """Build from the source and swap it in; on any source error keep serving the old index.

        `recalibrate`: swap the new build in even when its entries and bars came out the same, so what the
        (new) intent model said about the calibration questions is what the escalation line is read from.
        `forget_previous`: once it succeeded, keep no version to restore (`forget_previous`).
        """
        started = time.perf_counter()
        with self._reload_lock:
            if recalibrate:  # a new model behind the same classifier: what the old one said is stale
                self._signals.forget()
            before = self.embedder.calls
            current = self._current
            try:
                loaded, index = self._build(self.source)
            except KnowledgeBaseError as exc:
                log.warning("knowledge base reload rejected: %d problem(s)", len(exc.problems))
                return ReloadResult(False, current.version.to_dict() if current else None,
                                    errors=exc.problems, seconds=time.perf_counter() - started)
            self._loaded = loaded
            changed = (recalibrate or current is None or current.version.content_hash != index.version.content_hash
                       or current.thresholds.to_dict() != index.thresholds.to_dict())
            if changed:
                self._swap(current, index, keep_previous=not forget_previous)
            elif forget_previous:
                self._forget_previous()
            return ReloadResult(True, self.index.version.to_dict(), changed=changed,
                                seconds=time.perf_counter() - started, embedded_texts=self.embedder.calls - before)

    def _swap(self, current: FaqIndex | None, index: FaqIndex, keep_previous: bool = True) -> None:
        """Serve `index` (the caller holds the reload lock), keeping `current` to restore unless told not to."""
        self._previous, self._current = (current if keep_previous else None), index
        self._notify(index)
        self._save_caches()

    def _save_caches(self) -> None:
        """Persist the vectors of the version served and of the one kept to restore; nothing else."""
        current, previous = self._current, self._previous
        self.cache.save(keep={self.cache.key(t) for t in _all_texts(current) + current.calibration_texts} |
                        ({self.cache.key(t) for t in _all_texts(previous)} if previous else set()))
        if self.question_cache is not self.cache:
            self.question_cache.save(keep={self.question_cache.key(t) for t in current.calibration_texts})

    def forget_previous(self) -> None:
        """Keep no version to restore: after an erasure, the previous version still holds the erased customer's
        words (their alternates), and a restore must not serve them again. Their cached vectors go too."""
        with self._reload_lock:
            self._forget_previous()

    def _forget_previous(self) -> None:
        self._previous = None
        if self._current is not None:
            self._save_caches()

    def preview(self, source: str | Path | None = None) -> KnowledgePreview:
        """What a reload from `source` (default: the configured one) would serve, built beside the serving index
        and never swapped in: `KnowledgeBaseError` with every problem when the source has errors."""
        with self._reload_lock:
            source = Path(source) if source is not None else self.source
            loaded, index = self._build(source, reuse=source == self.source)
            return KnowledgePreview(self, index, loaded if source == self.source else None)

    def apply(self, preview: KnowledgePreview) -> ReloadResult:
        """Serve a preview of the configured source, exactly as it was judged (a gated reload), not a fresh read.

        `ValueError` for a preview of another source, which a reload would never serve."""
        if preview.loaded is None or preview.kb is not self:
            raise ValueError("only a preview of this knowledge base's own source can be served")
        started = time.perf_counter()
        with self._reload_lock:
            current, index = self._current, preview.index
            changed = current is None or current.version.content_hash != index.version.content_hash or \
                current.thresholds.to_dict() != index.thresholds.to_dict()
            self._loaded = preview.loaded
            if changed:
                self._swap(current, index)
            return ReloadResult(True, self.index.version.to_dict(), changed=changed,
                                seconds=time.perf_counter() - started)

    def _build(self, source: Path, reuse: bool = True) -> tuple[LoadedKnowledge, FaqIndex]:
        """Read, validate and index `source` (re-embedding only what changed); the caller holds the reload lock."""
        if source == self.source and self.before_reload is not None:
            try:
                self.before_reload()
            except Exception:  # e.g. a read-only folder: what is there is served, and the log says why
                log.exception("preparing the knowledge base before a reload failed; reading it as it is")
        loaded = load_knowledge(source, self.articles_base_url,
                                self._loaded.by_source() if self._loaded and reuse else None)
        entries = loaded.entries
        if self.extra_alternates is not None:
            entries = with_alternates(entries, self.extra_alternates())
        # The calibration questions are part of the source: their errors are the source's errors too.
        index, _ = build_index(entries, self.cache, self.config, previous=self._current,
                               question_cache=self.question_cache, questions=self.questions or questions_file(source),
                               classify=self._signals.asking(self.classify), target=self.target_wrong_rate)
        index.with_source(loaded.summary(), loaded.wording)
        return loaded, index

    def restore_previous(self) -> dict:
        """Swap back to the version served before the last reload."""
        with self._reload_lock:
            if self._previous is None:
                raise LookupError("there is no previous knowledge-base version to restore")
            self._current, self._previous = self._previous, self._current
            self._notify(self._current)
            return self._current.version.to_dict()

    def _notify(self, index: FaqIndex) -> None:
        for listener in self.listeners:
            try:
                listener(index)
            except Exception:  # a failing observer must not undo a good reload
                log.exception("knowledge-base listener failed")

    def search(self, queries: list[str], top_k: int = 5) -> list[list[Hit]]:
        index = self.index  # one snapshot for the whole call
        return index.search_vectors(self.encode_questions(queries), queries, top_k=top_k)

    def encode_questions(self, texts: list[str]) -> np.ndarray:
        """Customers' texts as the answer rule sees them: through the query encoder when there is one."""
        return (self.query_encoder or self.embedder).encode(texts)

    def answer(self, query: str, signal: IntentSignal | None = None) -> Decision:
        """The answer rule's decision for one customer message, given the intent model's signal."""
        index = self.index
        try:
            vector = self._queries.submit([query]).result(timeout=60)[0]
        except BatcherClosed:  # shutting down with a question in flight: still answer it
            vector = self.encode_questions([query])[0]
        self._remember([query], [vector])
        return self._decide(index, vector, query, signal)

    def answers(self, queries: list[str], signals: list[IntentSignal | None],
                index: FaqIndex | None = None) -> list[Decision]:
        """`answer` for many messages at once (a replay, a shadow model), each distinct text embedded once, the
        ones just answered not at all; from `index` when given."""
        index = index or self.index
        vectors = self._vectors(queries)
        return [self._decide(index, vectors[query], query, signal) for query, signal in zip(queries, signals,
                                                                                            strict=True)]

    def _vectors(self, queries: list[str]) -> dict[str, np.ndarray]:
        with self._recent_lock:
            found = {q: self._recent_vectors[q] for q in dict.fromkeys(queries) if q in self._recent_vectors}
        missing = [q for q in dict.fromkeys(queries) if q not in found]
        if missing:
            fresh = self.encode_questions(missing)
            found.update(zip(missing, fresh, strict=True))
            self._remember(missing, fresh)
        return found

    def _remember(self, queries: list[str], vectors) -> None:
        with self._recent_lock:
            for query, vector in zip(queries, vectors, strict=True):
                self._recent_vectors[query] = vector
                self._recent_vectors.move_to_end(query)
            while len(self._recent_vectors) > RECENT_QUERIES:
                self._recent_vectors.popitem(last=False)

    def _decide(self, index: FaqIndex, vector, query: str, signal: IntentSignal | None) -> Decision:
        hits = index.search_vectors(vector[None, :], [query], top_k=SEARCH_DEPTH)[0]
        # A model whose intents no entry names knows another domain: its out-of-scope flag must not veto answers.
        counted = signal if self.use_intents and index.linked_intents else None
        decision = index.decide(hits, counted, query)
        decision.vector = vector
        if decision.best is not None and decision.kind == "answer":
            decision.text = quote(decision.best.entry, query)
        return decision

    def close(self) -> None:
        self._queries.close()

    def status(self) -> dict:
        current, previous = self._current, self._previous
        return {
            "source": str(self.source),
            "version": current.version.to_dict() if current else None,
            "previous": previous.version.to_dict() if previous else None,
            "thresholds": current.thresholds.to_dict() if current else None,
            "calibrated_with": calibrated_with(current) if current else None,
            "calibration": current.thresholds.method if current else None,
            "contents": current.summary if current else None,
            "encoders": self.encoders(),
        }

    def encoders(self) -> dict:
        """What embeds what: the entries' encoder, and the questions' (the query encoder, with the agreement
        measured when it was made), or the same one."""
        query = self.query_encoder
        return {"entries": self.embedder.model_path,
                "questions": {"path": query.model_path, "layers": query.info.layers,
                              "agreement": query.info.agreement} if query else self.embedder.model_path}


@dataclass(frozen=True)
class KnowledgePreview:
    """A candidate knowledge base, answering as it would once reloaded (`kb check`, `kb reload --gate`)."""

    kb: KnowledgeBase
    index: FaqIndex
    loaded: LoadedKnowledge | None = None  # what was read: kept only for a preview of the configured source

    @property
    def version(self) -> dict:
        return self.index.version.to_dict()

    def answer(self, query: str, signal: IntentSignal | None = None) -> Decision:
        return self.answers([query], [signal])[0]

    def answers(self, queries: list[str], signals: list[IntentSignal | None]) -> list[Decision]:
        return self.kb.answers(queries, signals, index=self.index)


class _RememberedSignals:
    """What one intent model said about calibration questions, kept from one reload to the next.

    A reload that changes one article of a thousand asks the model only about that article's
    generated questions; another classifier, or a recalibration after a model deploy (`forget`),
    starts afresh.
    """

    def __init__(self) -> None:
        self._classify: Classifier | None = None
        self._known: dict[str, IntentSignal] = {}

    def forget(self) -> None:
        self._known = {}

    def asking(self, classify: Classifier | None) -> Classifier | None:
        if classify is None:
            return None
        if classify is not self._classify:
            self._classify, self._known = classify, {}

        def remembered(texts):
            missing = [t for t in dict.fromkeys(texts) if t not in self._known]
            if missing:
                self._known.update(zip(missing, classify(missing), strict=True))
            answers = [self._known[t] for t in texts]
            self._known = dict(zip(texts, answers, strict=True))  # only this calibration's questions are kept
            return answers

        return remembered


def calibrated_with(index: FaqIndex) -> str | None:
    """The model version that answered the calibration questions (None: retrieval alone was calibrated)."""
    return next((getattr(signal, "model_version", None) or None for _, signal in index.calibration
                 if signal is not None), None)


def _all_texts(index: FaqIndex) -> list[str]:
    """Every text the index embedded, sentences of passages included: the vectors the saved cache keeps."""
    return [text for _, _, text in embedded_rows(index.entries)]
