"""Posting to Slack: the `OutputChannel` side of the adapter, with slack_sdk's retries, and people's names.

Every post goes through the synchronous `WebClient`, with slack_sdk's own retry handlers (429
honouring `Retry-After` up to `MAX_RETRY_AFTER`, 5xx, connection errors; `RETRIES` retries in
all per call). A post still failing after them is logged (channel and reason, never the text)
and raised as `SlackDeliveryError`, so the core can tell staff their message did not arrive.
`send` is called from worker threads by the core (an answer, a staff reply arriving on another
channel, a claim), and the async listeners call the same methods via `asyncio.to_thread`, so
there is one code path per kind of post.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web import WebClient

from adapters.channels.slack import format as fmt
from bot.messages import Reply
from bot.posts import PostNotDeleted

log = logging.getLogger("frontdesk.slack")

CHANNEL = "slack"
USER_CACHE = 2000
# Web API calls: retries after the first attempt, shared by all handlers (slack_sdk counts attempts per call).
RETRIES = 3
# A 429 asking for a longer wait than this is given up at once: a worker thread would otherwise sit blocked.
MAX_RETRY_AFTER = 10


class SlackDeliveryError(SlackClientError):
    """Slack did not accept a post after the retries: the message did not reach its channel."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"Slack refused a post to {channel} after retries ({reason})")
        self.channel = channel
        self.reason = reason


def _retry_after(response) -> float:
    for name, values in (response.headers or {}).items():
        if name.lower() == "retry-after":
            value = values[0] if isinstance(values, list | tuple) else values
            try:
                return float(value)
            except (TypeError, ValueError):
                return 1.0
    return 1.0


class _RateLimited(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (sleeps `Retry-After`), but not for waits over `MAX_RETRY_AFTER`."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return (super()._can_retry(state=state, request=request, response=response, error=error)
                and _retry_after(response) <= MAX_RETRY_AFTER)


class _ServerErrors(ServerErrorRetryHandler):
    """slack_sdk's 5xx handler, for every 5xx (the built-in one retries 500 and 503 only)."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return response is not None and response.status_code >= 500


def retry_handlers() -> list:
    return [ConnectionErrorRetryHandler(max_retry_count=RETRIES), _RateLimited(max_retry_count=RETRIES),
            _ServerErrors(max_retry_count=RETRIES)]


def async_retry_handlers() -> list:
    return [AsyncConnectionErrorRetryHandler(max_retry_count=RETRIES),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RETRIES),
            AsyncServerErrorRetryHandler(max_retry_count=RETRIES)]


def api_error(exc: Exception) -> str:
    """A loggable reason for a failed Web API call; never the request (which carries the token)."""
    if isinstance(exc, SlackDeliveryError):
        return exc.reason
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", 200) != 200:
        return f"HTTP {response.status_code}"
    if response is not None and hasattr(response, "get"):
        return str(response.get("error") or type(exc).__name__)
    return type(exc).__name__


class SlackOutbound:
    """Posts replies into DMs and channel threads, with retries; looks up people's display names."""

    def __init__(self, web: WebClient) -> None:
        self.web = web
        self._names: dict[str, str] = {}

    def send(self, conversation_id: str, reply: Reply, in_reply_to: str | None = None) -> None:
        """Post `reply` into a DM (`D…`) or a channel thread (`C…:ts`), split within Slack's limits.

        Answers to a mention already go into the mention's thread (the conversation id names it),
        so `in_reply_to` adds nothing here.
        """
        channel, _, thread_ts = conversation_id.partition(":")
        for message in fmt.reply_messages(reply):
            self.post(channel=channel, thread_ts=thread_ts or None, **message)

    def post(self, **arguments):
        """`chat.postMessage` with the client's retries; `SlackDeliveryError` once they are spent."""
        try:
            return self.web.chat_postMessage(**arguments)
        except (SlackClientError, OSError) as exc:
            reason = api_error(exc)
            # Channel and reason only: the text is the customer's or staff's words.
            log.warning("Slack: gave up posting to %s after %d retries (%s)", arguments.get("channel"), RETRIES, reason)
            raise SlackDeliveryError(str(arguments.get("channel")), reason) from exc

    def delete(self, channel: str, ts: str) -> None:
        """`chat.delete` of one of the bot's own posts, with the client's retries (a customer's erasure).

        A post already gone is deleted; anything else Slack refuses, or a failure after the retries, is
        `PostNotDeleted` with Slack's reason.
        """
        try:
            self.web.chat_delete(channel=channel, ts=ts)
        except SlackApiError as exc:
            if api_error(exc) == "message_not_found":
                return
            raise PostNotDeleted(api_error(exc)) from exc
        except (SlackClientError, OSError) as exc:
            raise PostNotDeleted(api_error(exc)) from exc

    def user_name(self, user_id: str, fallback: str | None = None) -> str:
        """A person's display name (users.info, cached); their id when Slack will not say."""
        if not user_id:
            return fallback or "someone"
        if user_id in self._names:
            return self._names[user_id]
        try:
            user = self.web.users_info(user=user_id)["user"]
            profile = user.get("profile") or {}
            name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
        except (SlackClientError, OSError, KeyError, TypeError) as exc:
            log.info("Slack: users.info for %s failed (%s)", user_id, api_error(exc))
            return fallback or user_id
        if len(self._names) >= USER_CACHE:
            self._names.clear()  # names rarely change; a crude bound is enough to keep memory flat
        self._names[user_id] = name or fallback or user_id
        return self._names[user_id]
