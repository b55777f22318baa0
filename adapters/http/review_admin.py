"""`/admin/review...`: the review inbox over HTTP (docs/MODEL_LIFECYCLE.md "Review inbox"); agents may use it too.

Staff see what the bot was unsure of (`bot.review`), label items with an intent, an FAQ
entry or a dismissal, and export the intent labels as the `text,intent` CSV that
`frontdesk train` takes beside the original data. An FAQ label would add a customer's words to
the FAQ: an admin's is added; an agent's becomes a proposal that an admin approves or rejects
under `/admin/proposals` (admins only; each decision is audited by the admin gate).
"""

from __future__ import annotations

import csv
import io
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.http.admin_gate import CurrentActor, require_actor, require_admin
from adapters.http.dependencies import BotDep, ComponentsDep
from bot.review import ReviewError
from bot.review_proposals import ProposalNotFound
from bot.staff import Role

router = APIRouter(prefix="/admin/review", dependencies=[Depends(require_actor)], tags=["review"])
# Apart from /admin/review, which agents may use: the admin gate's rule is the path's, so these are admins' by it.
proposals_router = APIRouter(prefix="/admin/proposals", dependencies=[Depends(require_admin)], tags=["review"])

NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$"  # an intent name or FAQ id: no spaces, nothing a CSV or URL mangles
ANSWER_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$"  # an FAQ id or an article id (a path under articles/)


class LabelBody(BaseModel):
    """Exactly one of `intent` (existing or new), `faq_id` (an entry of the served FAQ) or `dismiss: true`."""

    model_config = ConfigDict(extra="forbid")

    intent: Annotated[str | None, Field(min_length=1, max_length=100, pattern=NAME)] = None
    faq_id: Annotated[str | None, Field(min_length=1, max_length=200, pattern=ANSWER_ID)] = None
    dismiss: bool | None = None
    group: bool = Field(default=False, description="Label every item of this item's group (similar texts) too.")

    @model_validator(mode="after")
    def exactly_one(self) -> LabelBody:
        given = [name for name in ("intent", "faq_id") if getattr(self, name) is not None]
        if self.dismiss:
            given.append("dismiss")
        elif self.dismiss is False:
            raise ValueError('"dismiss" can only be true; leave it out to label the item')
        if len(given) != 1:
            raise ValueError('give exactly one of "intent" (a name), "faq_id" (an FAQ entry id) or "dismiss": true')
        return self


@router.get("")
async def list_items(components: ComponentsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                     status: Annotated[str | None, Query(pattern="^(new|labelled|dismissed)$")] = None) -> list[dict]:
    """Newest first: `id`, `text` (masked), `intent`, `confidence`, `reason`, `channel`, `at`, `group`, ..."""
    inbox = components.need("bot").review  # after the query's checks
    try:
        return await run_in_threadpool(inbox.list, limit, status)
    except redis.RedisError:
        raise HTTPException(503, "review inbox unavailable: Redis is not answering") from None


def export_csv(rows: list[tuple[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "intent"])
    writer.writerows(rows)
    return out.getvalue()


@router.get("/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export(bot: BotDep) -> Response:
    """CSV `text,intent` of the intent-labelled items: `frontdesk train --intents` takes it beside your data."""
    rows = await run_in_threadpool(bot.review.export_rows)
    return Response(export_csv(rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="review-labels.csv"'})


@proposals_router.get("")
async def proposals(components: ComponentsDep) -> list[dict]:
    """Admins only. Agents' FAQ labels waiting for a decision, oldest first: `id`, `faq_id`, `text` (masked),
    `item_id`, `proposed_by`, `at`, and the customer's `channel` and `user_id`."""
    inbox = components.need("bot").review
    try:
        return await run_in_threadpool(inbox.proposals.pending)
    except redis.RedisError:
        raise HTTPException(503, "proposals unavailable: Redis is not answering") from None


PROPOSAL_ID = Annotated[str, Path(max_length=20)]


@proposals_router.post("/{proposal_id}/approve")
async def approve(proposal_id: PROPOSAL_ID, components: ComponentsDep, actor: CurrentActor) -> dict:
    """Admins only (audited as `proposal.approve`): the text becomes an alternate of the entry, merged on
    the next FAQ reload. 404 for a proposal not pending (unknown, or decided already)."""
    return await _decide(components.need("bot").review.proposals.approve, proposal_id, actor.name)


@proposals_router.post("/{proposal_id}/reject")
async def reject(proposal_id: PROPOSAL_ID, components: ComponentsDep, actor: CurrentActor) -> dict:
    """Admins only (audited as `proposal.reject`): nothing is added to the FAQ. 404 as for approve."""
    return await _decide(components.need("bot").review.proposals.reject, proposal_id, actor.name)


async def _decide(act, proposal_id: str, by: str) -> dict:
    try:
        return (await run_in_threadpool(act, proposal_id, by)).to_dict()
    except ProposalNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except redis.RedisError:
        raise HTTPException(503, "not decided: Redis is not answering") from None


@router.post("/{item_id}")
async def label(item_id: Annotated[str, Path(max_length=20)], body: LabelBody, components: ComponentsDep,
                actor: CurrentActor) -> dict:
    """Label an item (404 for an unknown id; 422 naming an unknown FAQ entry). Answers the items changed.

    An admin's FAQ label adds the text to the entry; an agent's is a proposal (`faq_proposal` on the items)."""
    inbox = components.need("bot").review  # after the body's checks
    if body.faq_id is not None:
        kb = components.need("kb")
        if body.faq_id not in {entry.answer_id for entry in kb.index.entries}:
            raise HTTPException(422, f"faq_id: no FAQ entry or article {body.faq_id!r} in the knowledge base served")
    try:
        changed = await run_in_threadpool(lambda: inbox.label(item_id, intent=body.intent, faq_id=body.faq_id,
                                                              dismiss=bool(body.dismiss), by=actor.name,
                                                              group=body.group,
                                                              approved=actor.role is Role.ADMIN))
    except ReviewError as exc:
        raise HTTPException(404, str(exc)) from None
    except redis.RedisError:
        raise HTTPException(503, "label not stored: Redis is not answering") from None
    return {"id": item_id, "changed": changed}
