"""The typed seams between the bot core and what it uses: the classifier, the FAQ answerer, the output channels.

The core is written against these protocols, not against `nlu/`, `knowledge/` or `adapters/`:
any object with the right shape plugs in (the batched inference engine or a bare predictor,
the live `KnowledgeBase` or a test's own), and the wiring layer chooses which.

Output channels follow Rasa's seam (`rasa/core/channels/channel.py`): a platform adapter
registers one output per channel name and hands the core `InboundMessage`s (`Bot.receive`);
the core decides what to say and when, and sends each `Reply` through the output of the
message's channel. Channels without an output (the REST API, the web chat's socket) get
their replies back from `receive` instead, and live pushes through `bot.outbox`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from bot.messages import Reply


class Prediction(Protocol):
    """What the classifier says about one message (`nlu.predictor.NluResult` has this shape)."""

    intent: str
    confidence: float
    out_of_scope: bool
    sentiment_scores: Mapping[str, float]


class Classifier(Protocol):
    def predict_one(self, text: str) -> Prediction: ...


class FaqEntry(Protocol):
    question: str
    answer: str


class FaqHit(Protocol):
    entry: FaqEntry
    score: float

    @property
    def source(self) -> Mapping[str, str]:
        """`{"kind": "faq", "id"}` or `{"kind": "article", "id", "title", "section", "url"}` (`bot.messages.Source`)."""
        ...


class Decision(Protocol):
    """The FAQ's verdict on one message (`knowledge.policy.Decision` has this shape)."""

    kind: str  # "answer", "suggest" or "decline" (knowledge.policy.DecisionKind)
    best: FaqHit | None
    hits: Sequence[FaqHit]
    text: str  # an answer's reply text (a passage trimmed to what answers the question); "" otherwise


class Answerer(Protocol):
    def answer(self, query: str, signal: Prediction | None = None) -> Decision: ...

    def answers(self, queries: list[str], signals: list[Prediction | None]) -> list[Decision]:
        """`answer` for many at once (a replay of real traffic)."""
        ...


@runtime_checkable
class OutputChannel(Protocol):
    """Sends replies to a customer on one platform; raises once the platform refused after its retries."""

    name: str  # the `InboundMessage.channel` this output serves

    def send(self, conversation_id: str, reply: Reply, in_reply_to: str | None = None) -> None:
        """Deliver `reply` into the platform conversation `conversation_id` (the channel's own id).

        `in_reply_to` is the platform message id being answered, when there is one (a channel may
        thread or quote its answer under it); None for staff messages and the hand-back.
        """


@runtime_checkable
class PostRemover(Protocol):
    """Deletes the bot's own posts on one platform (its escalation posts and relays), for customers' erasure."""

    name: str  # the platform the posts are on, as `bot.posts.PostLink.platform` names it

    def delete_post(self, channel: str, ts: str) -> None:
        """Delete the post `ts` in `channel`; a post already gone counts as deleted.

        Raises `bot.posts.PostNotDeleted` (with a reason, never content) when the platform refused or
        could not be reached after its retries: the erasure reports it and keeps the link to try again.
        """
