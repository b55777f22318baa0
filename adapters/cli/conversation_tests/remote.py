"""Conversations run against a running server (`--url`), through its public routes and with its tokens.

- a customer's message: `POST /chat` (FRONTDESK_CHAT_TOKEN, or the admin token), so always on the REST channel;
- `escalated` / `handed_back` and staff steps: the admin routes (`/admin/escalations…`, FRONTDESK_ADMIN_TOKEN);
- `intent`, `sentiment`, `out_of_scope`: `POST /predict` on the message's text (FRONTDESK_PREDICT_TOKEN when set,
  else the admin token, else none), since `/chat` does not return the model's reading.
"""

from __future__ import annotations

import uuid

import httpx

from adapters.cli.conversation_tests.drivers import AGENT, StepError, customer_id, no_escalation, sent_to_customer
from adapters.cli.conversation_tests.judge import Classification, HandOff
from adapters.cli.conversation_tests.spec import Conversation, StaffAction
from adapters.runtime.settings import Settings
from bot.escalations import EscalationStatus
from bot.messages import Reply

CHANNEL = "rest"  # the only channel POST /chat speaks
TIMEOUT_S = 60.0  # a cold server's first answers wait on the model
WITH_STAFF = (EscalationStatus.OPEN, EscalationStatus.CLAIMED)


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


class RemoteDriver:
    def __init__(self, url: str, settings: Settings):
        admin = _secret(settings.admin_token)
        self.chat_token = _secret(settings.chat_token) or admin
        if self.chat_token is None:
            raise ValueError("--url needs FRONTDESK_CHAT_TOKEN (or FRONTDESK_ADMIN_TOKEN) to call POST /chat")
        self.admin_token = admin
        self.predict_token = _secret(settings.predict_token) or admin
        self.where = url
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=TIMEOUT_S)

    def session(self, conversation: Conversation) -> RemoteSession:
        return RemoteSession(self)

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, token: str | None, what: str, **kwargs) -> dict | list:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.request(method, path, headers=headers, **kwargs)
        if response.status_code != 200:
            raise StepError(f"{method} {path} answered {response.status_code}: {response.text[:300]}"
                            + (f" ({what})" if response.status_code in (401, 403) else ""))
        return response.json()

    def admin(self, method: str, path: str, **kwargs) -> dict | list:
        if self.admin_token is None:
            raise StepError(f"{method} {path}: checking the hand-off against --url needs FRONTDESK_ADMIN_TOKEN")
        return self.request(method, path, self.admin_token, "FRONTDESK_ADMIN_TOKEN", **kwargs)


class RemoteSession:
    def __init__(self, driver: RemoteDriver):
        self.driver = driver
        self.id = customer_id()
        self.key = f"{CHANNEL}:{self.id}"

    def say(self, text: str) -> list[Reply]:
        body = self.driver.request("POST", "/chat", self.driver.chat_token, "FRONTDESK_CHAT_TOKEN",
                                   json={"sender": self.id, "message": text, "message_id": uuid.uuid4().hex})
        return [Reply.from_dict(r) for r in body["replies"]]

    def staff(self, action: StaffAction, text: str) -> list[Reply]:
        mine = self._escalations()
        if not mine:
            raise no_escalation(action)
        escalation = mine[0]["id"]  # newest first
        before = len(self.driver.admin("GET", f"/admin/escalations/{escalation}")["transcript"])
        body = {"agent": AGENT, **({"text": text} if action == StaffAction.REPLY else {})}
        self.driver.admin("POST", f"/admin/escalations/{escalation}/{action}", json=body)
        return sent_to_customer(self.driver.admin("GET", f"/admin/escalations/{escalation}")["transcript"][before:])

    def hand_off(self) -> HandOff:
        statuses = [e["status"] for e in self._escalations()]
        escalated = any(s in WITH_STAFF for s in statuses)
        return HandOff(escalated=escalated, handed_back=EscalationStatus.RESOLVED in statuses and not escalated)

    def classify(self, text: str) -> Classification:
        result = self.driver.request("POST", "/predict", self.driver.predict_token, "FRONTDESK_PREDICT_TOKEN",
                                     json={"text": text})["results"][0]
        return Classification(result["intent"], result["sentiment"], bool(result["out_of_scope"]))

    def _escalations(self) -> list[dict]:
        """This conversation's escalations, newest first (from the newest 500: a test's are among them)."""
        listed = self.driver.admin("GET", "/admin/escalations", params={"limit": 500})
        return [e for e in listed if e["conversation_id"] == self.key]
