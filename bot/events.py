"""What the bot reports as it works, for metrics and logs: a typed observer.

The core calls one method per kind of event; the wiring layer supplies an observer (Prometheus
counters in the HTTP server, nothing in a test). The methods are abstract, so an observer that
misses a kind of event cannot be built: a new event added here fails every observer that does not
handle it, instead of being dropped silently. Only ids, labels and counts pass through, never
message text (it is personal data).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum


class FaqOutcome(StrEnum):
    ANSWER = "answer"
    SUGGEST = "suggest"


class Stage(StrEnum):
    """Where a handled customer message spends its time (`BotObserver.stage`), in the order it passes them."""

    INTAKE = "intake"  # the dispatcher's intake: the pending marker and the intake script (bot.dispatch)
    LEASE = "lease"  # taking the conversation's lease, and the message from its inbox under it
    CLASSIFY = "classify"  # the intent model (`Classifier.predict_one`)
    RETRIEVE = "retrieve"  # the knowledge base (`Answerer.answer`)
    DECIDE = "decide"  # the rest of the responder's work: transcript, rules, rate limit, templates
    COMMIT = "commit"  # the fenced commit of the replies and effects, and running the effects
    DELIVER = "deliver"  # sending the replies to a push channel's output (bot.delivery)


class BotObserver(ABC):
    @abstractmethod
    def message(self, channel: str) -> None:
        """A customer message was handled (once, however often its platform delivered it)."""

    @abstractmethod
    def intent(self, intent: str, channel: str) -> None:
        """A message was classified."""

    @abstractmethod
    def faq(self, outcome: FaqOutcome) -> None:
        """The knowledge base answered, or suggested entries."""

    @abstractmethod
    def fallback(self, channel: str, text_length: int) -> None:
        """Nothing fitted: the bot said it could not help."""

    @abstractmethod
    def escalation(self, reason: str, channel: str) -> None:
        """A conversation was handed to staff."""

    @abstractmethod
    def rate_limited(self, channel: str) -> None:
        """A customer's message was over their rate limit."""

    @abstractmethod
    def redis_error(self) -> None:
        """Redis did not answer while handling a message (the customer got the apology)."""

    @abstractmethod
    def redis_refused_write(self) -> None:
        """Redis refused a write while handling a message: it is at its `maxmemory` (the customer got the apology)."""

    @abstractmethod
    def escalation_refused(self, scope: str, channel: str) -> None:
        """A request for a person was over an escalation limit ("customer" or "address"): none was opened."""

    @abstractmethod
    def escalation_expired(self, channel: str) -> None:
        """An escalation nobody claimed in time expired; the bot has the conversation again."""

    @abstractmethod
    def rating(self, rating: int, channel: str) -> None:
        """A customer rated the help they got from staff (bot.csat)."""

    @abstractmethod
    def stage(self, name: Stage, seconds: float) -> None:
        """A handled customer message spent `seconds` in stage `name`; a stage it skipped is not reported (no
        retrieve for small talk, no deliver on a channel without a push output)."""


class QuietObserver(BotObserver):
    """Reports nowhere: the default, and a base for tests that watch one event."""

    def message(self, channel: str) -> None:
        pass

    def intent(self, intent: str, channel: str) -> None:
        pass

    def faq(self, outcome: FaqOutcome) -> None:
        pass

    def fallback(self, channel: str, text_length: int) -> None:
        pass

    def escalation(self, reason: str, channel: str) -> None:
        pass

    def rate_limited(self, channel: str) -> None:
        pass

    def redis_error(self) -> None:
        pass

    def redis_refused_write(self) -> None:
        pass

    def escalation_refused(self, scope: str, channel: str) -> None:
        pass

    def escalation_expired(self, channel: str) -> None:
        pass

    def rating(self, rating: int, channel: str) -> None:
        pass

    def stage(self, name: Stage, seconds: float) -> None:
        pass
