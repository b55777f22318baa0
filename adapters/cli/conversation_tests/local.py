"""Conversations run here: the configured model and knowledge base, a bot built as the shell builds it, and an
embedded Redis in a temporary folder, so nothing is shared with (or left in) a running server's data."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from rich.console import Console

from adapters.channels.shell import start_components
from adapters.cli.conversation_tests.drivers import AGENT, customer_id, no_escalation, sent_to_customer
from adapters.cli.conversation_tests.judge import Classification, HandOff
from adapters.cli.conversation_tests.spec import Conversation, StaffAction
from adapters.runtime.components import Components
from adapters.runtime.demo_model import ensure_demo_model
from adapters.runtime.embedded_redis import start_embedded_redis, stop_embedded_redis
from adapters.runtime.settings import Settings
from bot.escalations import EscalationStatus
from bot.messages import InboundMessage, Reply
from bot.store import ConversationStatus

WITH_STAFF = (ConversationStatus.ESCALATED, ConversationStatus.WITH_AGENT)


class LocalDriver:
    def __init__(self, settings: Settings, console: Console):
        self.folder = Path(tempfile.mkdtemp(prefix="frontdesk-test-"))
        # The model as `frontdesk run` and `shell` find it (the demo model trained when none is configured).
        model = settings.model_dir or ensure_demo_model(settings, console)
        self.redis, url = start_embedded_redis(settings.model_copy(update={"home": self.folder}), console)
        local = settings.model_copy(update={"model_dir": model, "redis_url": url, "redis_cluster": False,
                                            "redis_sentinels": ""})
        self.where = f"local (model {model}, knowledge base {settings.kb or 'the demo'})"
        try:
            self.components: Components = start_components(local)
        except Exception:
            self._stop_redis()
            raise

    def session(self, conversation: Conversation) -> LocalSession:
        return LocalSession(self.components, conversation.channel)

    def close(self) -> None:
        self.components.close()
        self._stop_redis()

    def _stop_redis(self) -> None:
        stop_embedded_redis(self.redis)
        shutil.rmtree(self.folder, ignore_errors=True)


class LocalSession:
    def __init__(self, components: Components, channel: str):
        self.bot = components.need("bot")
        self.engine = components.need("engine")
        self.channel, self.id = channel, customer_id()
        self.key = f"{channel}:{self.id}"
        self.escalation_id: str | None = None  # the last one seen: resolving clears it from the conversation

    def say(self, text: str) -> list[Reply]:
        message = InboundMessage(self.channel, self.id, self.id, text, message_id=uuid.uuid4().hex)
        replies = list(self.bot.receive(message).replies)
        self._note_escalation()
        return replies

    def staff(self, action: StaffAction, text: str) -> list[Reply]:
        self._note_escalation()
        if self.escalation_id is None:
            raise no_escalation(action)
        before = len(self.bot.store.history(self.key))
        if action == StaffAction.CLAIM:
            self.bot.claim(self.escalation_id, AGENT)
        elif action == StaffAction.REPLY:
            self.bot.agent_reply(self.escalation_id, AGENT, text)
        else:
            self.bot.resolve(self.escalation_id, AGENT)
        return sent_to_customer(self.bot.store.history(self.key)[before:])

    def hand_off(self) -> HandOff:
        self._note_escalation()
        escalated = self.bot.store.meta(self.key).get("status") in WITH_STAFF
        resolved = self.escalation_id is not None and \
            self.bot.queue.get(self.escalation_id).status == EscalationStatus.RESOLVED
        return HandOff(escalated=escalated, handed_back=resolved and not escalated)

    def classify(self, text: str) -> Classification:
        # The same model the bot just used, asked again: it changes nothing, and gives what /predict would.
        result = self.engine.predict_one(text)
        return Classification(result.intent, result.sentiment, bool(result.out_of_scope))

    def _note_escalation(self) -> None:
        found = self.bot.store.meta(self.key).get("escalation_id")
        if found:
            self.escalation_id = found
