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
