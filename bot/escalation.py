"""When to hand a conversation to a person: configurable rules, each naming its reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EscalationRules:
    negative_threshold: float = 0.85  # one message this negative escalates
    window: int = 4  # the rolling window of recent messages ...
    window_negative: float = 0.5  # ... in which a message counts as negative above this ...
    window_share: float = 0.75  # ... escalates when this share of the window is negative
    human_intents: tuple[str, ...] = ("human_agent",)
    max_fallbacks: int = 3  # fallbacks in a row before escalating (a person is offered one earlier)

    def reason(self, *, negative: float, trail: list[float], intent: str, fallbacks: int) -> str | None:
        """The reason to escalate now, or None. `trail` includes this message, oldest first."""
        if intent in self.human_intents:
            return "asked_for_human"
        if negative >= self.negative_threshold:
            return "negative_message"
        recent = trail[-self.window:]
        if len(recent) >= self.window and sum(p >= self.window_negative for p in recent) >= self.window_share * len(
                recent):
            return "negative_trend"
        if fallbacks >= self.max_fallbacks:
            return "repeated_fallbacks"
        return None
