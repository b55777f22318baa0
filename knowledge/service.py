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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.builder import build_index
from knowledge.calibration import DEFAULT_TARGET, SEARCH_DEPTH, Classifier
from knowledge.embedder import Embedder, EmbeddingCache
from knowledge.index import FaqIndex, RetrievalConfig, embedded_rows
from knowledge.loading import LoadedKnowledge, load_knowledge
from knowledge.policy import Decision, Hit, IntentSignal
from knowledge.quoting import quote
from knowledge.sources import KnowledgeBaseError, SourceProblem, questions_file, with_alternates
from nlu.batching import BatcherClosed, MicroBatcher

log = logging.getLogger(__name__)


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
    """

    def __init__(self, source: str | Path, *, embedder: Embedder | None = None, cache_dir: str | Path | None = None,
                 config: RetrievalConfig | None = None, questions: str | Path | None = None,
                 classify: Classifier | None = None, use_intents: bool = True,
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
        self.cache = EmbeddingCache(self.embedder, cache_dir)
        self.config = config or RetrievalConfig()
        self._current: FaqIndex | None = None
        self._previous: FaqIndex | None = None
        self._reload_lock = threading.Lock()  # one build at a time; searches never take it
        self.listeners: list = []  # called with the new index after every swap
        # Alternates labelled outside the FAQ files (the review inbox): entry id -> texts, read on every reload.
        self.extra_alternates: Callable[[], dict[str, list[str]]] | None = None
        # Customers' questions arrive one per message; embedding them together is several times cheaper.
        self._queries = MicroBatcher(lambda texts: list(self.embedder.encode(texts)), max_batch=64,
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

    def reload(self, recalibrate: bool = False) -> ReloadResult:
        """Build from the source and swap it in; on any source error keep serving the old index.

        `recalibrate`: swap the new build in even when its entries and bars came out the same, so what the
        (new) intent model said about the calibration questions is what the escalation line is read from.
        """
        started = time.perf_counter()
        with self._reload_lock:
            if recalibrate:  # a new model behind the same classifier: what the old one said is stale
                self._signals.forget()
            try:
                loaded = load_knowledge(self.source, self.articles_base_url,
                                        self._loaded.by_source() if self._loaded else None)
                entries = loaded.entries
                if self.extra_alternates is not None:
                    entries = with_alternates(entries, self.extra_alternates())
            except KnowledgeBaseError as exc:
                log.warning("knowledge base reload rejected: %d problem(s)", len(exc.problems))
                current = self._current
                return ReloadResult(False, current.version.to_dict() if current else None,
                                    errors=exc.problems, seconds=time.perf_counter() - started)
            before = self.embedder.calls
            current = self._current
            try:
                index, _ = build_index(entries, self.cache, self.config, previous=current,
                                       questions=self.questions or questions_file(self.source),
                                       classify=self._signals.asking(self.classify), target=self.target_wrong_rate)
                index.summary = loaded.summary()
            except KnowledgeBaseError as exc:  # the calibration questions are part of the source
                log.warning("knowledge base reload rejected: %d problem(s)", len(exc.problems))
                return ReloadResult(False, current.version.to_dict() if current else None,
                                    errors=exc.problems, seconds=time.perf_counter() - started)
            self._loaded = loaded
            changed = (recalibrate or current is None or current.version.content_hash != index.version.content_hash
                       or current.thresholds.to_dict() != index.thresholds.to_dict())
            if changed:
                self._previous, self._current = current, index
                self._notify(index)
                self.cache.save(keep={self.cache.key(t) for t in _all_texts(index) + index.calibration_texts} |
                                ({self.cache.key(t) for t in _all_texts(current)} if current else set()))
            return ReloadResult(True, self.index.version.to_dict(), changed=changed,
                                seconds=time.perf_counter() - started, embedded_texts=self.embedder.calls - before)

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
        return index.search_vectors(self.embedder.encode(queries), queries, top_k=top_k)

    def answer(self, query: str, signal: IntentSignal | None = None) -> Decision:
        """The answer rule's decision for one customer message, given the intent model's signal."""
        index = self.index
        try:
            vector = self._queries.submit([query]).result(timeout=60)[0]
        except BatcherClosed:  # shutting down with a question in flight: still answer it
            vector = self.embedder.encode([query])[0]
        hits = index.search_vectors(vector[None, :], [query], top_k=SEARCH_DEPTH)[0]
        # A model whose intents no entry names knows another domain: its out-of-scope flag must not veto answers.
        counted = signal if self.use_intents and index.linked_intents else None
        decision = index.decide(hits, counted, query)
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
        }


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
