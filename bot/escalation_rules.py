"""When to hand a conversation to a person: configurable rules, each naming its reason.

The single-message line (`negative_threshold`) decides whether a calm customer with a
problem ("my parcel says delivered but there's nothing at my door") is treated as an
angry one. `calibrated` sets it from a development set of customers' messages labelled
calm, impatient or angry: the lowest line that keeps false escalations of calm and
impatient messages at or under `max_false`, so that it catches as many angry ones as
that allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

MIN_CALIBRATION_MESSAGES = 30  # calm and impatient ones; fewer: keep the defaults
FLOOR = 0.85  # never escalate a single message below this negative probability, however the data falls


@dataclass
class EscalationRules:
    negative_threshold: float = 0.97  # one message this negative escalates
    window: int = 4  # the rolling window of recent messages ...
    window_negative: float = 0.5  # ... in which a message counts as negative above this ...
    window_share: float = 0.75  # ... escalates when this share of the window is negative
    human_intents: tuple[str, ...] = ("human_agent",)
    # A guess below this confidence, of a person or of small talk, does not take the turn from the knowledge base:
    # a question worded as the intent model never saw (another domain's, often) lands on such intents at 0.2-0.55
    # ("if i mute someone will they know" as a request for a person, 0.54), while the demo model's own examples of
    # them score 0.6 and more in 95 % of cases, and the two demo questions it misreads so (0.46, 0.50) have answers.
    # Below it, a clear knowledge-base answer is given (with a person offered, for a request for one); without one,
    # the request for a person escalates as before.
    sure_intent: float = 0.6
    max_fallbacks: int = 3  # fallbacks in a row before escalating (a person is offered one earlier)
    apology_threshold: float = 0.5  # below the escalation line but this negative: apologise, then answer
    method: str = "default"
    calibrated_with: str = ""  # the model version whose sentiment scores the line was chosen on

    def reason(self, *, negative: float, trail: list[float], intent: str, fallbacks: int,
               confidence: float = 1.0) -> str | None:
        """The reason to escalate now, or None. `trail` includes this message, oldest first; `confidence` is the
        intent's (an unsure request for a person waits for the knowledge base's say, see `sure_intent`)."""
        if intent in self.human_intents and confidence >= self.sure_intent:
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

    def apologise(self, negative: float) -> bool:
        return self.apology_threshold <= negative < self.negative_threshold

    def calibrated(self, calm: Sequence[float], angry: Sequence[float], max_false: float = 0.0,
                   model_version: str = "") -> EscalationRules:
        """These rules with the single-message line set from negative probabilities of labelled messages.

        `calm`: calm and mildly impatient support messages (escalating them is a false escalation);
        `angry`: messages a support team wants a person to take over.
        """
        calm_scores = np.sort(np.asarray(calm, dtype=float))
        if len(calm_scores) < MIN_CALIBRATION_MESSAGES:
            return self
        allowed = int(np.floor(max_false * len(calm_scores) + 1e-9))
        # Just above the (allowed+1)-th most negative calm message: at most `allowed` calm ones reach it.
        line = float(calm_scores[-(allowed + 1)]) + 1e-4
        line = float(np.clip(line, FLOOR, 0.999))
        caught = float(np.mean(np.asarray(angry) >= line)) if len(angry) else float("nan")
        false = float(np.mean(calm_scores >= line))
        method = (f"calibrated on {len(calm_scores)} calm/impatient and {len(angry)} angry messages: "
                  f"false escalations {false:.1%}, angry caught {caught:.0%}")
        return replace(self, negative_threshold=round(line, 4),
                       apology_threshold=min(self.apology_threshold, line), method=method,
                       calibrated_with=model_version)
