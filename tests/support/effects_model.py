"""A stub classifier for the exactly-once tests: an in-scope intent the bot has no answer for, mildly negative."""

from __future__ import annotations

from types import SimpleNamespace


class MildlyUnhappyModel:
    def predict_one(self, text: str):
        return SimpleNamespace(intent="order_status", confidence=0.9, out_of_scope=False, top_intents=[],
                               sentiment="negative", sentiment_scores={"negative": 0.6, "neutral": 0.3,
                                                                      "positive": 0.1})
