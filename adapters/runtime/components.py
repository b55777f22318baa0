"""The long-lived parts a server process holds: NLU engine, knowledge base, Redis, syncs, channels and bot.

They load in a background thread so the process answers `/healthz` at once and
`/readyz` says exactly what is still missing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from adapters.runtime import metrics
from adapters.runtime.channel_registry import ChannelRegistry
from adapters.runtime.model_sync import loader, start_model_sync
from adapters.runtime.readiness import ReadinessMonitor
from adapters.runtime.redis_client import redis_client
from adapters.runtime.settings import Settings
from adapters.runtime.shadow import ShadowSync, ShadowTap
from bot.core import Bot, BotHooks
from bot.errors import REDIS_ERRORS
from bot.escalation_rules import EscalationRules
from bot.escalations import EscalationPolicy
from bot.gaps import Gaps
from bot.keys import Keys
from bot.learned import LearnedEntries
from bot.templates import TemplateError, Templates
from common.supervise import Supervised, every
from knowledge.learned import learned_path, write_learned

if TYPE_CHECKING:  # the types only: importing them loads torch and the retrieval stack, done in _load_* instead
    from knowledge.service import KnowledgeBase
    from knowledge.sync import ReloadSync
    from nlu.engine import InferenceEngine
    from nlu.sync import ModelSync

log = logging.getLogger("frontdesk")



def _user_list(value: str) -> set[str]:
    return {u.strip() for u in value.split(",") if u.strip()}


def build_bot(settings: Settings, client: redis.Redis, engine, kb, channels: ChannelRegistry, *,
              admin_actions: dict | None = None, rules: EscalationRules | None = None,
              templates: Templates | None = None) -> Bot:
    """The bot as every server process runs it, from the settings: its channels' outputs and staff
    notifiers, Prometheus as its observer, its admins, limits, retention and business hours."""
    hooks = BotHooks(output=channels.output, on_escalation=[channels.on_escalation],
                     on_customer_message=[channels.on_customer_message],
                     on_status_change=[channels.on_status_change], observer=metrics.MetricsObserver(),
                     admin_actions=admin_actions or {})
    admins = {"slack": _user_list(settings.slack_admin_users), "telegram": _user_list(settings.telegram_admin_users)}
    return Bot(client, engine, kb, prefix=settings.redis_prefix, admins=admins, hooks=hooks, templates=templates,
               rate_limit=settings.rate_limit_pair, lease_ms=settings.lease_ms, rules=rules,
               dedup_seconds=settings.dedup_seconds, hours=settings.hours(),
               escalation_retention_s=settings.escalation_retention_days * 86_400,
               review_retention_s=settings.review_days * 86_400, review_confidence=settings.review_confidence,
               resolution_s=settings.resolution_hours * 3600, audit_days=settings.audit_days,
               escalation_policy=EscalationPolicy(per_customer=settings.escalation_rate_limit_pair,
                                                  per_address=settings.escalation_address_limit_pair,
                                                  expire_after_s=settings.escalation_expire_hours * 3600,
                                                  max_reminders=settings.reannounce_max))


class NotReady(RuntimeError):
    """A part the request needs is still loading (the app answers 503)."""


COMPONENT_NAMES = {"engine": "model", "kb": "knowledge base", "bot": "bot"}


@dataclass
class Components:
    settings: Settings
    engine: InferenceEngine | None = None
    kb: KnowledgeBase | None = None
    redis: redis.Redis | None = None
    sync: ReloadSync | None = None  # knowledge-base reloads and restores on every worker
    model_sync: ModelSync | None = None  # model deploys and restores on every worker
    shadow_sync: ShadowSync | None = None  # a candidate classifying live messages on every worker, never answering
    tap: ShadowTap | None = None  # the bot's classifier: the engine, and the shadow beside it when one runs
    learned: LearnedEntries | None = None  # FAQ entries approved from topics, for the fleet (bot.learned)
    gaps: Gaps | None = None  # topics of unanswered messages and drafts from them (bot.gaps)
    bot: Bot | None = None
    errors: dict[str, str] = field(default_factory=dict)
    channels: ChannelRegistry = field(default_factory=ChannelRegistry)
    loaded: threading.Event = field(default_factory=threading.Event)
    _closed: threading.Event = field(default_factory=threading.Event)
    _built_kb: bool = False  # close only what this object made; a knowledge base handed in belongs to the caller
    readiness: ReadinessMonitor = field(init=False)  # what /readyz reads (adapters/runtime/readiness.py)

    def __post_init__(self) -> None:
        self.readiness = ReadinessMonitor(self)

    def need(self, name: str):
        """The loaded part, or `NotReady` naming what is still missing."""
        part = getattr(self, name)
        if part is None:
            raise NotReady(f"the {COMPONENT_NAMES.get(name, name)} is not loaded yet")
        return part

    def missing(self, redis_answers: bool | None = None) -> list[str]:
        """What is not ready yet; `redis_answers` given (a check that timed out: False), Redis is not pinged."""
        missing = []
        if self.engine is None:
            missing.append("model")
        if self.kb is None or not self.kb.ready:
            missing.append("index")
        if "query_encoder" in self.errors:  # configured but refused: serving without it would hide the mistake
            missing.append("query_encoder")
        if "wording" in self.errors:  # as for the query encoder: the company's texts are not the ones it says
            missing.append("wording")
        if not (self.redis_ok() if redis_answers is None else redis_answers):
            missing.append("redis")
        if not missing and self.bot is None:
            # The bot is built last (its escalation line is calibrated with the model): a process is not
            # ready for customers' messages until it exists.
            missing.append("bot")
        return missing

    def redis_ok(self) -> bool:
        if self.redis is None:
            return False
        try:
            return bool(self.redis.ping())
        except REDIS_ERRORS:  # a cluster's slot errors too: not a Redis that answers
            return False

    def start(self) -> None:
        threading.Thread(target=self._load, name="startup", daemon=True).start()
        # /readyz and frontdesk_ready{component}: checked every second in the background (readiness.py).
        self.readiness.start(self._closed)

    def _load(self) -> None:
        """Each part in turn; one that fails for any reason is named in `errors` (so in /readyz) and the log,
        and the parts that do not need it still load."""
        stages = (("redis", self._load_redis), ("model", self._load_model), ("model", self._start_model_sync),
                  ("index", self._load_kb), ("bot", self._load_bot), ("bot", self._start_shadow_sync),
                  ("bot", self._start_gaps))
        try:
            for part, stage in stages:
                if self._closed.is_set():  # closed while loading: start no more threads
                    break
                try:
                    stage()
                except Exception as exc:
                    self.errors.setdefault(part, f"failed to start: {type(exc).__name__}")
                    log.exception("start-up: the %s failed to load", part)
        finally:
            self.loaded.set()
        if self._closed.is_set():  # what a stage started after `close` ran: stopped too, not left running
            self.close()
            return
        with contextlib.suppress(Exception):  # at once, not at the monitor's next round (which reports a failure)
            self.readiness.refresh()

    def _load_redis(self) -> None:
        if self.redis is None and self.settings.redis_url:
            s = self.settings
            self.redis = redis_client(s.redis_url, cluster=s.redis_cluster, sentinels=s.redis_sentinels,
                                      sentinel_master=s.redis_sentinel_master)

    def _load_model(self) -> None:
        from nlu.artifacts import ModelLoadError
        from nlu.engine import load_engine  # heavy (torch): imported when the model loads
        from nlu.onnx_backend import use_lanes

        if self.engine is not None:
            return
        if self.settings.model_dir is None:
            self.errors["model"] = "FRONTDESK_MODEL_DIR is not set"
            return
        use_lanes(self.settings.onnx_threads)  # FRONTDESK_ONNX_THREADS, for this model and every deployed one
        try:
            self.engine = load_engine(self.settings.model_dir, self.settings.device,
                                      max_batch=self.settings.max_batch, max_wait_ms=self.settings.max_wait_ms,
                                      on_batch=metrics.observe_batch, backend=self.settings.backend)
        except (ModelLoadError, ValueError) as exc:  # the message names the file (nlu.artifacts, nlu.onnx_backend)
            self.errors["model"] = str(exc)
            log.error("model failed to load: %s", exc)
        except Exception as exc:  # anything else a loader raises: still named, never a silent 503
            self.errors["model"] = f"{self.settings.model_dir} failed to load: {type(exc).__name__}: {exc}"[:1000]
            log.error("model failed to load: %s", self.errors["model"])

    def _start_model_sync(self) -> None:
        if self.engine is None or self.redis is None or self.model_sync is not None:
            return
        # A deploy recorded in Redis is caught up to here, before the FAQ calibrates; each later swap recalibrates.
        self.model_sync = start_model_sync(self.engine, self.redis, self.settings, self.recalibrate)

    def _query_encoder(self, embedder):
        """The configured query encoder, checked against `embedder`; None when there is none, and when it cannot
        serve (then /readyz stays 503 naming the problem, as for a model that cannot load)."""
        from knowledge.query_encoder import QueryEncoderError, load_query_encoder

        if self.settings.query_encoder is None:
            return None
        try:
            return load_query_encoder(self.settings.query_encoder, embedder)
        except QueryEncoderError as exc:
            self.errors["query_encoder"] = str(exc)
            log.error("query encoder refused: %s", exc)
            return None

    def _load_kb(self) -> None:
        from knowledge.embedder import Embedder
        from knowledge.service import KnowledgeBase
        from knowledge.sync import ReloadSync

        if self.kb is None:
            source = self.settings.kb_source
            encoder = str(self.settings.faq_encoder) if self.settings.faq_encoder else None
            # Calibrated with the intent model it will decide beside (when it loaded).
            classify = self.engine.predict if self.engine is not None else None
            embedder = Embedder(encoder)
            self.kb = KnowledgeBase(source, embedder=embedder, cache_dir=self.settings.home / "kb-cache",
                                    cache_seed=self.settings.kb_embeddings,
                                    query_encoder=self._query_encoder(embedder),
                                    questions=self.settings.kb_questions,
                                    classify=classify, target_wrong_rate=self.settings.wrong_answer_rate,
                                    articles_base_url=self.settings.articles_base_url)
            self._built_kb = True
            self.kb.listeners.append(lambda index: metrics.set_faq_version(index.version.short))
            if self.redis is not None:  # approved entries reach learned.yaml before every read, the first too
                self.learned = LearnedEntries(self.redis, Keys(self.settings.redis_prefix))
                self.kb.before_reload = self._write_learned
            result = self.kb.reload()
            if not result.ok:
                self.errors["index"] = f"{len(result.errors)} problem(s) in {source}: " + "; ".join(
                    str(e) for e in result.errors[:5])
                log.error("knowledge base failed to load: %s", self.errors["index"])
        # Sync even when the first load failed: a fixed source reloaded anywhere then reaches this process too.
        if self.redis is not None and self.sync is None:
            self.sync = ReloadSync(self.kb, self.redis, self.settings.redis_prefix)
            self.sync.start()

    def _load_bot(self) -> None:
        if self.bot is not None or self.engine is None or self.kb is None or self.redis is None:
            return
        # The bot classifies through a tap on the engine: a shadow model sees every live message too.
        self.tap = ShadowTap(self.engine)
        self.bot = build_bot(self.settings, self.redis, self.tap, self.kb, self.channels,
                             admin_actions={"/reload": self.reload_summary}, rules=self._escalation_rules(),
                             templates=self._wording(self.kb.index.wording if self.kb.ready else None))
        self.kb.extra_alternates = self.bot.review.faq_alternates  # staff's FAQ labels, from the next reload on
        # Every index swapped in (a reload, a restore, a recalibration after a model deploy) brings its own
        # calibration answers: the escalation line follows them.
        self.kb.listeners.append(lambda index: self.bot.use_rules(self._escalation_rules()))
        # The company's wording is part of each version (knowledge.wording): it changes when the version does.
        self.kb.listeners.append(lambda index: self.bot.use_templates(self._wording(index.wording, self.bot.templates)))
        # Takes over work a dead worker left behind (bot.dispatch), every FRONTDESK_SWEEP_SECONDS.
        self.bot.start_sweeper(self.settings.sweep_seconds)
        try:  # escalations from before the console's status index, filed once (else by the first sweep below)
            self.bot.queue.ensure_indexed()
        except REDIS_ERRORS as exc:
            log.warning("escalations not indexed yet: Redis unavailable (%s); the re-announce sweep will",
                        type(exc).__name__)
        # Every process checks; the queue makes sure only one of them re-announces each escalation. Supervised
        # (common.supervise): a failed round (Redis away, a cluster error, a record it cannot read) restarts it.
        interval = self.settings.reannounce_after
        wait = min(30.0, interval / 2)
        Supervised("reannounce", every(wait, lambda: self.bot.reannounce_unclaimed(interval)), stop=self._closed,
                   stale_after=max(60.0, 3 * wait)).start()

    @property
    def learned_file(self) -> Path:
        return learned_path(self.kb.source)

    def _write_learned(self) -> None:
        if write_learned(self.learned_file, self.learned.all()):
            log.info("approved FAQ entries written to %s", self.learned_file)

    def _start_gaps(self) -> None:
        from knowledge.topics import group_texts

        if self.bot is None or self.gaps is not None:
            return
        self.gaps = Gaps(self.bot.review, self.bot.store, self.redis, Keys(self.settings.redis_prefix),
                         group=group_texts, embed=self.kb.encode_questions,
                         decide=lambda texts: self.bot.decisions_for(texts, self.engine.predict(texts)))

    def _start_shadow_sync(self) -> None:
        if self.bot is None or self.model_sync is None or self.shadow_sync is not None:
            return
        self.shadow_sync = ShadowSync(self.tap, self.redis, Keys(self.settings.redis_prefix).model,
                                      loader(self.settings), self.bot.decisions_for,
                                      budget=self.settings.shadow_budget)
        self.shadow_sync.start()

    def _escalation_rules(self):
        """The escalation line calibrated on the development set's tone labels, where it has them.

        The knowledge base's calibration already ran the model over those questions: their
        negative-sentiment scores are read from there rather than predicted again.
        """
        from knowledge.service import calibrated_with

        rules = EscalationRules()
        if not self.kb.ready:
            return rules
        labelled = [(q.tone, s) for q, s in self.kb.index.calibration if s is not None]
        calm = [s.sentiment_scores.get("negative", 0.0) for tone, s in labelled if tone in ("calm", "impatient")]
        angry = [s.sentiment_scores.get("negative", 0.0) for tone, s in labelled if tone == "angry"]
        rules = rules.calibrated(calm, angry, model_version=calibrated_with(self.kb.index) or "")
        log.info("escalation rules: %s (single-message line %.3f)", rules.method, rules.negative_threshold)
        return rules

    def recalibrate(self) -> None:
        """Another intent model now serves here (a deploy or restore): choose the FAQ's answer bars and the
        escalation line again with it, in the background. The entries' vectors are cached, so this asks the
        new model the calibration questions and embeds nothing new; until it ends the old bars stand."""
        if self.kb is None or not self.kb.ready or self._closed.is_set():
            return

        def run() -> None:
            try:
                result = self.kb.reload(recalibrate=True)
            except Exception:  # e.g. the process is shutting down under it: the previous bars stand
                log.exception("recalibration after a model swap failed; the previous bars stand")
                return
            if not result.ok:
                log.warning("recalibration after a model swap kept the previous bars: %d problem(s) in the FAQ",
                            len(result.errors))

        threading.Thread(target=run, name="recalibrate", daemon=True).start()

    def reload_kb(self, preview=None, *, erasure: bool = False):
        """Reload the knowledge base here and, when it succeeded, tell every other worker. `preview`: serve this
        build of the configured source (`KnowledgeBase.preview`, what a gate judged) instead of reading it again.
        `erasure`: after a customer's erasure, every worker also drops the version it could restore (it holds
        their words)."""
        from knowledge.sync import ERASE

        kb = self.need("kb")
        result = kb.apply(preview) if preview is not None else kb.reload(forget_previous=erasure)
        if result.ok and self.sync is not None:
            self.sync.announce(ERASE if erasure else "reload")
        return result

    def _wording(self, wording: dict | None, fallback: Templates | None = None) -> Templates:
        """The bot's neutral texts with the knowledge base's `wording` over them. Wording the bot cannot use (a
        reason's text given as a list, say) keeps `fallback` (the wording in use; at start the defaults), and
        /readyz answers 503 naming it until a version with usable wording is served."""
        try:
            templates = Templates.over_defaults(wording)
        except TemplateError as exc:
            self.errors["wording"] = f"the knowledge base's templates.yaml: {exc}"
            log.error("the bot's wording was not taken up: %s", exc)
            return fallback or Templates.load()
        self.errors.pop("wording", None)
        return templates

    def reload_summary(self) -> str:
        """The admin chat command `/reload`, summarised for a chat message."""
        result = self.reload_kb()
        if not result.ok:
            lines = [str(e) for e in result.errors[:10]]
            return f"Reload rejected, still serving {result.version['version']}:\n" + "\n".join(lines)
        return f"Knowledge base reloaded: version {result.version['version']} ({result.version['entries']} entries)."

    def close(self) -> None:
        self._closed.set()
        self.readiness.close()
        if self.shadow_sync is not None:
            self.shadow_sync.stop()
        if self.model_sync is not None:
            self.model_sync.stop()
        if self.sync is not None:
            self.sync.stop()
        if self.bot is not None:
            self.bot.close()
        if self.engine is not None:
            self.engine.close()
        if self.kb is not None and self._built_kb:
            self.kb.close()
