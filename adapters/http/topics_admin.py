"""`/admin/topics` and `/admin/kb/entries`: what customers ask that the bot cannot answer, and closing the gap.

`GET /admin/topics?days=N` (agents and admins) lists the topics of the window's unanswered messages,
most impact first (`bot.gaps`); `POST /admin/topics/{id}/draft` proposes an FAQ entry from one.
`POST /admin/kb/entries` (admins only: the admin gate, /admin/kb is not an agent path) approves an
entry: it is kept for the fleet (`bot.learned`), written into the knowledge folder's `learned.yaml`
and the knowledge base is reloaded on every worker; the audit log records it (`kb.entries`). An
entry the knowledge base refuses (422 naming the problem) is taken back, and nothing changes.

Building the topics clusters the window's messages and asks the bot about each topic's examples
(a topic the knowledge base now answers drops out), so a list is kept for `CACHE_S` per window:
the console polls it.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from adapters.http.admin_gate import require_actor, require_admin
from adapters.http.dependencies import ComponentsDep
from adapters.runtime.components import Components
from bot.errors import REDIS_ERRORS
from bot.gaps import TopicNotFound
from bot.learned import EntryClash
from knowledge.records import slugify

router = APIRouter(prefix="/admin/topics", dependencies=[Depends(require_actor)], tags=["topics"])
entries = APIRouter(prefix="/admin/kb", dependencies=[Depends(require_admin)], tags=["knowledge base"])

CACHE_S = 30.0
TOPIC_ID = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="A topic's id from GET /admin/topics.")]
_cache: dict[tuple[int, int], tuple[float, list[dict]]] = {}  # (components id, days) -> (when, topics)
_building = threading.Lock()  # one build at a time per process: the console's polls wait for it, not repeat it


def _gaps(components: Components):
    components.need("bot")
    if components.gaps is None:
        raise HTTPException(503, "topics need the bot, which is not loaded yet")
    return components.gaps


@router.get("")
async def topics(components: ComponentsDep, days: Annotated[int, Query(ge=1, le=90)] = 7) -> list[dict]:
    """`[{"id", "label", "size", "escalated", "negative", "trend", "previous", "impact", "examples"}]`, most
    impact first, of the messages of the last `days` days the bot did not answer (examples masked)."""
    gaps = _gaps(components)
    try:
        return await run_in_threadpool(_topics, components, gaps, days)
    except REDIS_ERRORS:
        raise HTTPException(503, "topics unavailable: Redis is not answering") from None


def _topics(components: Components, gaps, days: int) -> list[dict]:
    key = (id(components), days)
    with _building:
        found = _cache.get(key)
        if found is not None and time.monotonic() - found[0] < CACHE_S:
            return found[1]
        listed = [topic.to_dict() for topic in gaps.topics(days)]
        _cache[key] = (time.monotonic(), listed)
        return listed


def forget_topics() -> None:
    """The next list is built afresh (an entry was approved: a topic it covers drops out at once)."""
    _cache.clear()


@router.post("/{topic_id}/draft")
async def draft(topic_id: TOPIC_ID, components: ComponentsDep) -> dict:
    """`{"question", "alternates", "answer", "topic", "label", "staff_replies"}`: a proposed FAQ entry from the
    topic's messages and the staff replies in its conversations; 404 for a topic not listed lately."""
    gaps = _gaps(components)
    try:
        return await run_in_threadpool(gaps.draft, topic_id)
    except TopicNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except REDIS_ERRORS:
        raise HTTPException(503, "no draft: Redis is not answering") from None


TEXT = Annotated[str, Field(min_length=1, max_length=500)]


class EntryBody(BaseModel):
    id: Annotated[str | None, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,59}$", description=(
        "The entry's id; default: made from the question."))] = None
    question: TEXT
    answer: Annotated[str, Field(min_length=1, max_length=5000)]
    alternates: Annotated[list[TEXT], Field(max_length=50)] = []
    intents: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=10)] = []
    topic: Annotated[str | None, Field(pattern=r"^[0-9a-f]{12}$", description=(
        "The topic it was drafted from: its customers own the alternates taken from their words."))] = None


@entries.post("/entries")
async def add_entry(body: EntryBody, components: ComponentsDep) -> dict:
    """Approve an FAQ entry: kept in the knowledge folder's learned.yaml and live on every worker after the
    reload this starts; 409 when the id is taken, 422 when the knowledge base refuses it (nothing changes)."""
    components.need("kb")
    if components.learned is None or components.gaps is None:
        raise HTTPException(503, "approved entries need Redis and the bot, which are not loaded yet")
    return await run_in_threadpool(_add_entry, components, body)


def _add_entry(components: Components, body: EntryBody) -> dict:
    kb, learned = components.kb, components.learned
    taken = {entry.id for entry in kb.index.entries} | {entry.answer_id for entry in kb.index.entries} | learned.ids()
    entry_id = body.id or _free_id(slugify(body.question), taken)
    if entry_id in taken:
        raise HTTPException(409, f"the knowledge base has an entry {entry_id!r} already; choose another id")
    entry = {"id": entry_id, "question": body.question.strip(), "answer": body.answer.strip(),
             "alternates": [a.strip() for a in dict.fromkeys(body.alternates) if a.strip()]}
    if body.intents:
        entry["intents"] = body.intents
    owners = components.gaps.owners(body.topic, entry["alternates"]) if body.topic else []
    try:
        learned.add(entry, owners)
    except EntryClash as exc:
        raise HTTPException(409, str(exc)) from None
    result = components.reload_kb()
    if not result.ok:  # the source refused it (or was broken already): take it back, serve what was served
        learned.remove(entry_id)
        components.reload_kb()
        raise HTTPException(422, {"reason": "the knowledge base refused the entry; nothing changed",
                                  "errors": [e.to_dict() for e in result.errors]})
    forget_topics()
    return {"id": entry_id, "version": result.version, "file": str(components.learned_file)}


def _free_id(base: str, taken: set[str]) -> str:
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base[:56]}-{n}", n + 1
    return candidate
