"""Replaying real traffic through a candidate, and the gate in front of a deploy or reload (`--replay`, `--gate`).

`bot.replay` does the comparing; this module feeds it from the server: the traffic is the
statistics' `asked` lists of the last days (`bot.stats`), the serving version is what this
worker serves, and the candidate is a loaded model or a knowledge base built beside the serving
one (`KnowledgeBase.preview`). A gate's verdict adds the conversation tests' results, which the
command line ran on the candidate and sends along (`tests`). A refusal answers 409 with the
reasons and the replay, and is audited ("model.deploy.refused", "faq.reload.refused"); a deploy
or reload forced past a failing gate is audited too ("….forced"), once it has happened, beside the
action itself.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Annotated

from fastapi import HTTPException
from pydantic import BaseModel, Field

from adapters.http.admin_gate import Actor
from adapters.http.dependencies import AdminServices
from adapters.runtime.components import Components
from bot.errors import REDIS_ERRORS
from bot.replay import BotDecision, Decide, GateVerdict, ReplayReport, gate, replay

log = logging.getLogger("frontdesk")



class TestsRun(BaseModel):
    """The conversation tests' results on the candidate, as `frontdesk test --json` counts them."""

    passed: Annotated[int, Field(ge=0)] = 0
    failed: Annotated[int, Field(ge=0)] = 0
    failures: Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=200)] = []


class GateBody(BaseModel):
    """`--gate`: refuse unless the tests pass and at most `max_changed_share` of replayed messages change."""

    max_changed_share: Annotated[float | None, Field(ge=0, le=1, description="Default FRONTDESK_GATE_MAX_CHANGED.")
                                 ] = None
    days: Annotated[int | None, Field(ge=1, le=35, description="Default FRONTDESK_REPLAY_DAYS.")] = None
    tests: TestsRun | None = None


def traffic(components: Components, days: int) -> Counter[str]:
    """The last `days` of customers' texts, masked and normalised, with how often each came; 503 without Redis."""
    try:
        return components.need("bot").stats.asked_questions(days)
    except REDIS_ERRORS:
        raise HTTPException(503, "the recent traffic cannot be read: Redis is not answering") from None


def _deciding(classify: Callable[[list[str]], list], decide: Callable[[list[str], list], list[BotDecision]]
              ) -> Decide:
    return lambda texts: decide(texts, classify(texts))


class _ClassifiedOnce:
    """One model's results for the chunk both versions decide in turn (`bot.replay.replay`): computed once."""

    def __init__(self, classify: Callable[[list[str]], list]):
        self.classify = classify
        self.texts: list[str] | None = None
        self.results: list = []

    def __call__(self, texts: list[str]) -> list:
        if texts != self.texts:
            self.texts, self.results = list(texts), self.classify(texts)
        return self.results


def model_replay(components: Components, candidate, days: int) -> ReplayReport:
    """The traffic through the serving model and through `candidate` (a loaded predictor), same knowledge base."""
    bot, engine = components.need("bot"), components.need("engine")
    return replay(traffic(components, days), _deciding(engine.predict, bot.decisions_for),
                  _deciding(candidate.predict, bot.decisions_for), days=days)


def kb_replay(components: Components, preview, days: int) -> ReplayReport:
    """The traffic through the serving knowledge base and through `preview` (a candidate), same model."""
    bot, engine = components.need("bot"), components.need("engine")
    classify = _ClassifiedOnce(engine.predict)  # the same model for both versions
    return replay(traffic(components, days), _deciding(classify, bot.decisions_for),
                  _deciding(classify, lambda texts, results: bot.decisions_for(texts, results, preview)), days=days)


def days_of(components: Components, body: GateBody | None, days: int | None = None) -> int:
    return days or (body.days if body is not None and body.days else None) or components.settings.replay_days


def verdict(components: Components, body: GateBody, report: ReplayReport) -> GateVerdict:
    share = body.max_changed_share if body.max_changed_share is not None else components.settings.gate_max_changed
    return gate(report, body.tests.model_dump() if body.tests is not None else None, share)


def enforce(found: AdminServices, actor: Actor, action: str, target: str, judged: GateVerdict, report: ReplayReport,
            *, force: bool) -> Callable[[], None]:
    """Refuse (409, audited as `ACTION.refused`) a candidate the gate failed, unless forced. Returns what to call
    once the change has happened: a forced one is audited as `ACTION.forced` then, never before (a change that
    fails after the gate must not be on record as made); a no-op when the gate passed."""
    if judged.passed:
        return lambda: None
    why = "; ".join(judged.reasons)
    if force:
        log.warning("gate overridden for %s: %s", action, why)
        return lambda: _audit(found, actor, f"{action}.forced", f"{target}: {why}")
    _audit(found, actor, f"{action}.refused", f"{target}: {why}")
    log.warning("gate refused %s: %s", action, why)
    raise HTTPException(409, {"reason": f"the gate refused it: {why}; nothing changed. Send "
                                        "{\"force\": true} (`--force`) to go ahead anyway.",
                              "gate": judged.to_dict(), "replay": report.to_dict()})


def _audit(found: AdminServices, actor: Actor, action: str, target: str) -> None:
    try:
        found.audit.record(actor.name, action, target)
    except REDIS_ERRORS:  # a gate decision that cannot be audited is not taken
        raise HTTPException(503, "the audit log cannot be written: Redis is not answering") from None
