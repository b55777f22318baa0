"""The Slack adapter: slack-bolt's AsyncApp in, slack_sdk's WebClient out, one bot core behind both.

Inbound, bolt verifies each request (signing secret, 5-minute replay window) and runs
the listener before it answers (`process_before_response=True`). A customer's message
event is answered 200 only once the message is durably queued in Redis (the core's
intake, `Bot.handle` up to its enqueue), within `INTAKE_WAIT` of Slack's 3 seconds; if it
cannot be queued (Redis down or too slow) the event gets a 503 and Slack delivers it
again. Handling and posting the answer continue in the background. Actions and commands
call `ack()` first and do their work in the background too. Retries are answered once
because every message carries `channel:ts` as its `message_id`, which the core
de-duplicates even while the first delivery is still being handled.

Outbound, every post goes through the synchronous `WebClient`, with slack_sdk's own
retry handlers (429 honouring `Retry-After` up to `MAX_RETRY_AFTER`, 5xx, connection
errors; `RETRIES` retries in all per call). A post still failing after them is logged
(channel and reason, never the text) and raised as `SlackDeliveryError`, so the core
can tell staff their message did not arrive. `send` and the staff notifier methods are
called from worker threads by the core (a staff reply arriving on another channel, a
claim), and the async listeners call the same methods via `asyncio.to_thread`, so there
is one code path per kind of post.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from slack_bolt import BoltResponse
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackClientError
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
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web import WebClient
from slack_sdk.web.async_client import AsyncWebClient

from adapters.components import Components
from adapters.slack import format as fmt
from bot.messages import InboundMessage, Reply
from bot.queue import EscalationError

log = logging.getLogger("frontdesk.slack")

CHANNEL = "slack"
MAX_BODY = 1_000_000  # Slack's payloads are a few kB; refuse anything absurd before parsing it
USER_CACHE = 2000
# Message subtypes a person produces by writing; edits, joins, bot posts and the like are not messages to answer.
PERSON_SUBTYPES = (None, "thread_broadcast", "file_share")
# Web API calls: retries after the first attempt, shared by all handlers (slack_sdk counts attempts per call).
RETRIES = 3
# A 429 asking for a longer wait than this is given up at once: a worker thread would otherwise sit blocked.
MAX_RETRY_AFTER = 10
# How long an event's 200 may wait for its message to be queued in Redis; Slack gives up after 3 s.
INTAKE_WAIT = 2.0


class SlackDeliveryError(SlackClientError):
    """Slack did not accept a post after the retries: the message did not reach its channel."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"Slack refused a post to {channel} after retries ({reason})")
        self.channel = channel
        self.reason = reason


class IntakeError(RuntimeError):
    """An event's message could not be queued in Redis in time: Slack gets a 5xx and delivers it again."""


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


def _api_error(exc: Exception) -> str:
    """A loggable reason for a failed Web API call; never the request (which carries the token)."""
    if isinstance(exc, SlackDeliveryError):
        return exc.reason
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", 200) != 200:
        return f"HTTP {response.status_code}"
    if response is not None and hasattr(response, "get"):
        return str(response.get("error") or type(exc).__name__)
    return type(exc).__name__


class SlackAdapter:
    """`OutputChannel` and `StaffNotifier` for Slack, plus the bolt app that receives Slack's requests."""

    name = CHANNEL

    def __init__(self, components: Components) -> None:
        settings = components.settings
        assert settings.slack_bot_token is not None
        token = settings.slack_bot_token.get_secret_value()
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        self.components = components
        self.support_channel = settings.slack_support_channel
        self.web = WebClient(token=token, base_url=settings.slack_api_url, timeout=10,
                             retry_handlers=retry_handlers())
        # Bolt verifies with `secret`; without one (Socket Mode only) it has no HTTP handler at all, see `http`.
        # process_before_response: an event's 200 waits for the listener, which returns once the message is queued.
        self.app = AsyncApp(client=AsyncWebClient(token=token, base_url=settings.slack_api_url,
                                                  retry_handlers=async_retry_handlers()),
                            signing_secret=secret, name="frontdesk", logger=logging.getLogger("frontdesk.slack.bolt"),
                            process_before_response=True)
        self.http = bool(secret)
        self._verifier = SignatureVerifier(secret) if secret else None
        self.socket = None  # the Socket Mode handler, when SLACK_APP_TOKEN is set (see `connect`)
        self._app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
        self._names: dict[str, str] = {}
        self._tasks: set[asyncio.Future] = set()  # work carried on after Slack got its answer
        self._register()

    # ------------------------------------------------------------------ life cycle
    async def connect(self) -> None:
        """Check the token once (so a wrong one shows up in the log at start) and open Socket Mode if set."""
        try:
            identity = await self.app.client.auth_test()
            log.info("Slack: connected as %s in team %s", identity.get("user"), identity.get("team"))
        except SlackClientError as exc:  # bolt retries auth.test per request; keep serving the other channels
            log.error("Slack: auth.test failed (%s); check SLACK_BOT_TOKEN", _api_error(exc))
        if self._app_token:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            self.socket = AsyncSocketModeHandler(self.app, self._app_token)
            try:
                await self.socket.connect_async()
                log.info("Slack: Socket Mode connected")
            except Exception as exc:
                log.error("Slack: Socket Mode connection failed (%s); check SLACK_APP_TOKEN", _api_error(exc))

    async def stop(self) -> None:
        if self.socket is not None:
            await self.socket.close_async()
        if self._tasks:  # answers being handled and posted: give them a moment to go out
            await asyncio.wait(set(self._tasks), timeout=15)

    def _spawn(self, work) -> None:
        """Run `work` after Slack has its answer; kept referenced until done, failures logged."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)

        def done(finished: asyncio.Future) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("Slack: background work failed (%s)", type(finished.exception()).__name__,
                          exc_info=finished.exception())

        task.add_done_callback(done)

    # ------------------------------------------------------------------ HTTP (Events API, interactivity, commands)
    async def handle_http(self, request: Request) -> Response:
        """One Slack request through bolt; 401 for anything not signed by Slack, 400 for a body bolt cannot read."""
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"detail": "request body too large"}, status_code=413)
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        if not timestamp.isdigit():  # bolt's verifier would raise on int("junk") instead of refusing
            return JSONResponse({"detail": "invalid Slack signature"}, status_code=401)
        try:
            bolt_request = to_async_bolt_request(request, body)
            if not isinstance(bolt_request.body, dict):
                raise ValueError("body is not an object")
        except Exception:
            # Unreadable: say so only to a sender who signed it; anyone else learns nothing but 401.
            signed = self._signed(body, timestamp, request.headers.get("x-slack-signature", ""))
            if not signed:
                return JSONResponse({"detail": "invalid Slack signature"}, status_code=401)
            return JSONResponse({"detail": "malformed Slack request body"}, status_code=400)
        if request.headers.get("x-slack-retry-num"):
            log.info("Slack: retry %s (%s)", request.headers.get("x-slack-retry-num"),
                     request.headers.get("x-slack-retry-reason", "?"))
        try:
            response = await self.app.async_dispatch(bolt_request)
        except Exception:  # a signed but unexpected payload shape must not become a 500
            log.exception("Slack: could not dispatch a request")
            return JSONResponse({"detail": "unexpected Slack request"}, status_code=400)
        if response.status == 500:
            # Bolt's own answer when its matchers choke on a signed payload of an unexpected shape (an event
            # "type" that is an object, ...); it has logged why. Slack would only retry a 5xx, to the same end.
            return JSONResponse({"detail": "unexpected Slack request"}, status_code=400)
        return to_starlette_response(response)

    def _signed(self, body: bytes, timestamp: str, signature: str) -> bool:
        """Slack's v0 signature check over the raw bytes, for bodies bolt cannot read.

        slack_sdk's `SignatureVerifier` decodes the body as UTF-8 first and raises on anything
        else, which made a body of invalid UTF-8 a 500 instead of a refusal.
        """
        if self._verifier is None or abs(time.time() - int(timestamp)) > 60 * 5:
            return False
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._verifier.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))

    # ------------------------------------------------------------------ bolt listeners
    def _register(self) -> None:
        app = self.app

        @app.middleware
        async def bot_loaded(next):  # bolt passes arguments by name; `next` continues the chain
            """After signature checks: until the bot is loaded, 503 so Slack delivers the event again later."""
            if self.components.bot is None:
                return BoltResponse(status=503, body="the bot is still loading")
            await next()

        @app.error
        async def failed(error: Exception):
            """An event not queued: 503, so Slack delivers it again. Anything else: logged, 500 (see handle_http)."""
            if isinstance(error, IntakeError):
                log.warning("Slack: event not taken in (%s); answering 503 so Slack delivers it again", error)
                return BoltResponse(status=503, body="the message could not be queued; deliver it again")
            log.error("Slack: a listener failed (%s)", type(error).__name__, exc_info=error)
            return None

        @app.event("app_mention")
        async def mention(event: dict, context) -> None:
            await self._on_mention(event, context.bot_user_id)

        @app.event("message")
        async def message(event: dict, context) -> None:
            await self._on_message(event, context.bot_user_id)

        @app.event(re.compile(".*"))
        async def other_event() -> None:
            """Acknowledged and ignored, so Slack does not retry events we have no use for."""

        @app.action(re.compile(f"^{fmt.CLAIM_ACTION}"))
        async def claim(ack, body: dict, action: dict, respond) -> None:
            await ack()
            self._spawn(self._staff_action("claim", body, action, respond))

        @app.action(re.compile(f"^{fmt.RESOLVE_ACTION}"))
        async def resolve(ack, body: dict, action: dict, respond) -> None:
            await ack()
            self._spawn(self._staff_action("resolve", body, action, respond))

        @app.action(re.compile(f"^{fmt.SUGGEST_ACTION}_"))
        async def suggestion(ack, body: dict, action: dict, respond) -> None:
            await ack()
            self._spawn(self._on_suggestion(body, action, respond))

        @app.command(re.compile("^/"))
        async def command(ack, command: dict, respond) -> None:
            await ack()
            self._spawn(self._on_command(command, respond))

    # ------------------------------------------------------------------ customers
    async def _on_message(self, event: dict, bot_user_id: str | None) -> None:
        if not self._from_a_person(event, bot_user_id):
            return
        if event.get("channel_type") == "im":
            await self._customer_message(event["channel"], event, fmt.unescape(str(event.get("text") or "")))
            return
        thread_ts = event.get("thread_ts")
        if thread_ts and thread_ts != event.get("ts"):
            self._spawn(self._staff_reply(event, thread_ts))
        # Other channel messages: mentions arrive (again) as app_mention, everything else is not for us.

    async def _on_mention(self, event: dict, bot_user_id: str | None) -> None:
        if not self._from_a_person(event, bot_user_id):
            return
        channel = event.get("channel", "")
        thread_ts = event.get("thread_ts") or event.get("ts", "")
        bot = self.components.need("bot")
        if event.get("thread_ts") and await asyncio.to_thread(bot.queue.find_by_link, CHANNEL,
                                                              f"{channel}:{thread_ts}"):
            return  # staff mentioning the bot in an escalation thread: the message event carries the reply
        mention = re.compile(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>" if bot_user_id else r"^\s*<@[^>]+>")
        text = fmt.unescape(mention.sub("", str(event.get("text") or "")).strip())
        await self._customer_message(f"{channel}:{thread_ts}", event, text)

    @staticmethod
    def _from_a_person(event: dict, bot_user_id: str | None) -> bool:
        return (event.get("subtype") in PERSON_SUBTYPES and not event.get("bot_id") and bool(event.get("user"))
                and event.get("user") != bot_user_id and bool(event.get("channel")) and bool(event.get("ts")))

    async def _customer_message(self, conversation_id: str, event: dict, text: str) -> None:
        if not text.strip():
            return  # a file without words: nothing to answer
        user = event["user"]
        message = InboundMessage(CHANNEL, conversation_id, user, text, message_id=f"{event['channel']}:{event['ts']}",
                                 display_name=await asyncio.to_thread(self.user_name, user))
        await self._take_in(message)

    async def _take_in(self, message: InboundMessage) -> None:
        """Return once `message` is queued in Redis (then Slack gets its 200); raise `IntakeError` if it is not.

        `Bot.receive` queues the message, then handles it and posts the answer through this
        adapter's `send`; it runs in a worker thread while this watches for the message's
        platform id in Redis (set in the same atomic step as the queueing) or for `receive`
        to finish. From the queueing on, the core owns the message: if this process dies,
        another worker's sweeper answers it.
        """
        bot = self.components.need("bot")
        receiving = asyncio.ensure_future(asyncio.to_thread(bot.receive, message))
        self._spawn(self._settle(message, receiving))
        deadline = time.monotonic() + INTAKE_WAIT
        while True:
            await asyncio.wait({receiving}, timeout=0.05)
            if receiving.done():
                if receiving.exception() is not None or not receiving.result().queued:
                    raise IntakeError("Redis did not take the message")
                return
            if await asyncio.to_thread(self._queued, bot, message):
                return
            if time.monotonic() > deadline:
                raise IntakeError(f"not queued within {INTAKE_WAIT} s")

    @staticmethod
    def _queued(bot, message: InboundMessage) -> bool:
        if not message.message_id:
            return False
        try:
            return bool(bot.redis.exists(bot.keys.seen(message.conversation_key, message.message_id)))
        except Exception:  # Redis not answering: not queued (yet)
            return False

    @staticmethod
    async def _settle(message: InboundMessage, receiving: asyncio.Future) -> None:
        """Log how a message taken in ended (the core has answered and posted it, or why not)."""
        try:
            handled = await receiving
        except Exception:
            log.exception("Slack: handling a message failed")
            return
        if not handled.queued:
            # Slack got a 5xx and delivers the event again; the core posted nothing for this attempt.
            log.warning("Slack: message %s not queued (Redis unavailable); left to Slack's redelivery",
                        message.message_id)
        elif handled.delivered is None and handled.duplicate:
            log.info("Slack: message %s delivered again; already answered", message.message_id)

    async def _on_suggestion(self, body: dict, action: dict, respond) -> None:
        """A suggestion button: its text becomes the customer's next message, in the conversation it was shown in."""
        # A forged body may hold a list or a number where Slack sends an object: such a click is ignored.
        container = _mapping(body.get("container"))
        channel = _mapping(body.get("channel")).get("id") or container.get("channel_id")
        user = _mapping(body.get("user")).get("id")
        choice = str(action.get("value", ""))
        posted = _mapping(body.get("message"))
        if not isinstance(channel, str) or not isinstance(user, str) or not channel or not user or not choice:
            return
        thread_ts = posted.get("thread_ts") or container.get("thread_ts")
        conversation_id = channel if channel.startswith("D") or not thread_ts else f"{channel}:{thread_ts}"
        await respond(replace_original=True, text=posted.get("text") or choice,
                      blocks=fmt.chosen_suggestion_blocks(posted.get("text", ""), choice))
        message = InboundMessage(CHANNEL, conversation_id, user, choice,
                                 message_id=f"action:{channel}:{action.get('action_ts', time.time())}",
                                 display_name=await asyncio.to_thread(self.user_name, user))
        bot = self.components.need("bot")
        await self._settle(message, asyncio.ensure_future(asyncio.to_thread(bot.receive, message)))

    # ------------------------------------------------------------------ staff
    async def _staff_action(self, kind: str, body: dict, action: dict, respond) -> None:
        escalation_id = str(action.get("value", ""))
        user = body.get("user") or {}
        agent = await asyncio.to_thread(self.user_name, user.get("id", ""), user.get("name") or user.get("username"))
        bot = self.components.need("bot")
        try:
            await asyncio.to_thread(bot.claim if kind == "claim" else bot.resolve, escalation_id, agent)
        except EscalationError as exc:
            await respond(text=f"Could not {kind} that: {fmt.escape(str(exc))}.", response_type="ephemeral",
                          replace_original=False)

    async def _staff_reply(self, event: dict, thread_ts: str) -> None:
        bot = self.components.need("bot")
        record = await asyncio.to_thread(bot.queue.find_by_link, CHANNEL, f"{event['channel']}:{thread_ts}")
        if record is None:
            return  # a thread that is not an escalation
        text = fmt.unescape(str(event.get("text") or "")).strip()
        if not text:
            return
        agent = await asyncio.to_thread(self.user_name, event["user"])
        try:
            result = await asyncio.to_thread(bot.agent_reply, record["id"], agent, text)
        except EscalationError as exc:
            await asyncio.to_thread(self._tell_staff, event["channel"], event["user"], thread_ts,
                                    f"Not sent to the customer: {fmt.escape(str(exc))}.")
            return
        if result.get("delivered") is False:
            await asyncio.to_thread(self._tell_staff, event["channel"], event["user"], thread_ts,
                                    "Not delivered: the customer's platform refused your message after retries. "
                                    "It is in the transcript, marked undelivered.")

    def _tell_staff(self, channel: str, user: str, thread_ts: str, text: str) -> None:
        try:
            self.web.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=text)
        except (SlackClientError, OSError) as exc:
            log.warning("Slack: ephemeral notice failed (%s)", _api_error(exc))

    async def _on_command(self, command: dict, respond) -> None:
        """`/frontdesk reload|queue`: the core's admin commands, so the allow-list is checked in one place."""
        words = str(command.get("text", "")).split()
        action = words[0].lower() if words else ""
        name = fmt.escape(str(command.get("command", "/frontdesk")))
        if action not in ("reload", "queue"):
            await respond(text=f"Usage: `{name} reload` reloads the FAQ, `{name} queue` lists open escalations.",
                          response_type="ephemeral")
            return
        user = str(command.get("user_id", ""))
        trigger = command.get("trigger_id")
        message = InboundMessage(CHANNEL, f"command:{user}", user, f"/{action}",
                                 message_id=f"command:{trigger}" if trigger else None,
                                 display_name=command.get("user_name"))
        bot = self.components.need("bot")
        handled = await asyncio.to_thread(bot.handle, message)
        if handled.duplicate:
            return
        text = "\n".join(fmt.escape(r.text) for r in handled.replies) or "Done."
        for piece in fmt.split_text(text):
            await respond(text=piece, response_type="ephemeral")

    # ------------------------------------------------------------------ people
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
            log.info("Slack: users.info for %s failed (%s)", user_id, _api_error(exc))
            return fallback or user_id
        if len(self._names) >= USER_CACHE:
            self._names.clear()  # names rarely change; a crude bound is enough to keep memory flat
        self._names[user_id] = name or fallback or user_id
        return self._names[user_id]

    # ------------------------------------------------------------------ OutputChannel
    def send(self, conversation_id: str, reply: Reply, in_reply_to: str | None = None) -> None:
        """Post `reply` into a DM (`D…`) or a channel thread (`C…:ts`), split within Slack's limits.

        Answers to a mention already go into the mention's thread (the conversation id names it),
        so `in_reply_to` adds nothing here.
        """
        channel, _, thread_ts = conversation_id.partition(":")
        for message in fmt.reply_messages(reply):
            self._post(channel=channel, thread_ts=thread_ts or None, **message)

    def _post(self, **arguments):
        """`chat.postMessage` with the client's retries; `SlackDeliveryError` once they are spent."""
        try:
            return self.web.chat_postMessage(**arguments)
        except (SlackClientError, OSError) as exc:
            reason = _api_error(exc)
            # Channel and reason only: the text is the customer's or staff's words.
            log.warning("Slack: gave up posting to %s after %d retries (%s)", arguments.get("channel"), RETRIES, reason)
            raise SlackDeliveryError(str(arguments.get("channel")), reason) from exc

    # ------------------------------------------------------------------ StaffNotifier
    def _link(self, record: dict) -> tuple[str, str] | None:
        channel, _, ts = str(record.get(f"link:{CHANNEL}", "")).partition(":")
        return (channel, ts) if channel and ts else None

    def on_escalation(self, record: dict, transcript: list[dict]) -> bool:
        """Post the escalation (or, when re-announced, a reminder in its thread) to the support channel.

        False when Slack refused it after the retries (logged; the escalation stays in the queue).
        """
        if not self.support_channel:
            return True
        try:
            link = self._link(record)
            if record.get("reannounced") and link:
                minutes = (time.time() - float(record.get("created_at", time.time()))) / 60
                self._post(channel=link[0], thread_ts=link[1], reply_broadcast=True,
                           text=fmt.reminder_text(record, minutes))
                return True
            posted = self._post(channel=self.support_channel, **fmt.escalation_message(record, transcript))
            self.components.need("bot").queue.link(record["id"], CHANNEL, f"{posted['channel']}:{posted['ts']}")
            return True
        except (SlackClientError, OSError) as exc:
            log.warning("Slack: posting escalation %s failed (%s)", record.get("id"), _api_error(exc))
            return False

    def on_customer_message(self, record: dict, text: str) -> bool:
        """The customer wrote while staff hold the conversation: show it in the escalation's thread (False: refused)."""
        link = self._link(record)
        if link is None:
            return True
        try:
            for piece in fmt.split_text(fmt.customer_relay_text(text)):
                self._post(channel=link[0], thread_ts=link[1], text=piece)
            return True
        except (SlackClientError, OSError) as exc:
            log.warning("Slack: relaying a customer message failed (%s)", _api_error(exc))
            return False

    def on_status_change(self, record: dict) -> None:
        """Redraw the escalation post: who claimed or resolved it, and only the buttons that still apply."""
        link = self._link(record)
        if link is None:
            return
        try:
            transcript = self.components.need("bot").transcript(record["id"])
            self.web.chat_update(channel=link[0], ts=link[1], **fmt.escalation_message(record, transcript))
        except (SlackClientError, OSError, EscalationError) as exc:
            log.warning("Slack: updating escalation %s failed (%s)", record.get("id"), _api_error(exc))


def _mapping(value) -> dict:
    """`value` where it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}
