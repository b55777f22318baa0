"""Each conversation's steps in order, through a driver, each checked by the judge. A conversation stops at its
first failing step: later steps build on that one, so what they would report says little."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from adapters.cli.conversation_tests.drivers import Driver, Session, StepError
from adapters.cli.conversation_tests.judge import Judge, Mismatch, shown
from adapters.cli.conversation_tests.spec import Conversation, Step


@dataclass(frozen=True)
class StepFailure:
    step: Step
    mismatches: tuple[Mismatch, ...] = ()
    error: str = ""  # the step could not be taken (`StepError`)
    replies: str = ""  # what the bot said, shown with the failure


@dataclass
class Outcome:
    conversation: Conversation
    seconds: float = 0.0
    steps_run: int = 0
    failure: StepFailure | None = None

    @property
    def passed(self) -> bool:
        return self.failure is None


@dataclass
class RunResult:
    where: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]


def run_all(conversations: list[Conversation], driver: Driver, judge: Judge, on_done=None) -> RunResult:
    result = RunResult(driver.where)
    started = time.perf_counter()
    for conversation in conversations:
        outcome = run_one(conversation, driver.session(conversation), judge)
        result.outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    result.seconds = time.perf_counter() - started
    return result


def run_one(conversation: Conversation, session: Session, judge: Judge) -> Outcome:
    outcome = Outcome(conversation)
    started = time.perf_counter()
    try:
        for step in conversation.steps:
            outcome.steps_run = step.number
            outcome.failure = take(step, session, judge)
            if outcome.failure is not None:
                break
    finally:
        outcome.seconds = time.perf_counter() - started
    return outcome


def take(step: Step, session: Session, judge: Judge) -> StepFailure | None:
    """One step taken and judged; its failure, or None when every expectation held."""
    try:
        if step.user is not None:
            replies = session.say(step.user)
            text = step.user
        else:
            replies = session.staff(step.staff, step.staff_text)
            text = ""
        mismatches = judge.step(step, replies, session.hand_off, lambda: session.classify(text))
    except StepError as exc:
        return StepFailure(step, error=str(exc))
    return StepFailure(step, tuple(mismatches), replies=shown(replies)) if mismatches else None
