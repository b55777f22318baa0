"""What both ways of running a conversation share: the session interface the runner drives, and the staff
member the tests act as.

A session is one conversation with a customer id of its own (`test-…`, fresh each time), so one test's
escalations, fallback counts and rate limits never reach another's.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from adapters.cli.conversation_tests.judge import Classification, HandOff
from adapters.cli.conversation_tests.spec import Conversation, StaffAction
from bot.messages import Reply

AGENT = "conversation-test"  # the staff member a test's `staff:` steps act as
SYSTEM_NOTES = ("escalation_id", "by")  # fields of the transcript's own notes ("claimed by …"), never sent


class StepError(RuntimeError):
    """A step could not be taken at all (a staff step with nothing to claim, a server that refused): a failure."""


class Session(Protocol):
    def say(self, text: str) -> list[Reply]: ...

    def staff(self, action: StaffAction, text: str) -> list[Reply]: ...

    def hand_off(self) -> HandOff: ...

    def classify(self, text: str) -> Classification: ...


class Driver(Protocol):
    where: str  # for the report: "local" or the server's URL

    def session(self, conversation: Conversation) -> Session: ...

    def close(self) -> None: ...


def customer_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def sent_to_customer(events: list[dict]) -> list[Reply]:
    """The messages a staff action sent the customer, from the transcript events it added (not its notes)."""
    return [Reply(str(e.get("text", "")), sender=str(e["role"]), agent=e.get("agent"))
            for e in events if e.get("role") in ("bot", "agent", "system")
            and not (e["role"] == "system" and any(k in e for k in SYSTEM_NOTES))]


def no_escalation(action: StaffAction) -> StepError:
    return StepError(f"staff: {action}: the conversation has no escalation (it was never handed to staff)")
