"""Slack's requests in: signature checks, events, customers' messages taken in, and buttons, via slack-bolt.

Bolt verifies each request (signing secret, 5-minute replay window) and runs the listener before
it answers (`process_before_response=True`). A customer's message event is answered 200 only
once the message is durably queued in Redis (the core's intake, `Bot.handle` up to its enqueue),
within `INTAKE_WAIT` of Slack's 3 seconds; if it cannot be queued (Redis down or too slow) the
event gets a 503 and Slack delivers it again. Handling and posting the answer continue in the
background. Actions and commands call `ack()` first and do their work in the background too.
Retries are answered once because every message carries `channel:ts` as its `message_id`, which
the core de-duplicates even while the first delivery is still being handled; a staff member's
thread reply is taken once per event id (adapters/channels/slack/staff.py). What staff do
(claim and resolve buttons, thread replies, slash commands) is handed to adapters/channels/slack/staff.py.
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
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.channels.slack import format as fmt
from adapters.channels.slack.outbound import CHANNEL, SlackOutbound, async_retry_handlers
from adapters.channels.slack.staff import SlackStaff
from adapters.runtime.components import Components
from bot.messages import InboundMessage

log = logging.getLogger("frontdesk.slack")

MAX_BODY = 1_000_000  # Slack's payloads are a few kB; refuse anything absurd before parsing it
# Message subtypes a person produces by writing; edits, joins, bot posts and the like are not messages to answer.
PERSON_SUBTYPES = (None, "thread_broadcast", "file_share")
# How long an event's 200 may wait for its message to be queued in Redis; Slack gives up after 3 s.
INTAKE_WAIT = 2.0


class IntakeError(RuntimeError):
    """An event's message could not be queued in Redis in time: Slack gets a 5xx and delivers it again."""


class SlackInbound:
    """The bolt app that receives Slack's requests, and what it does with customers' messages and clicks."""

    def __init__(self, components: Components, token: str, secret: str, api_url: str,
                 outbound: SlackOutbound, staff: SlackStaff) -> None:
        self.components = components
        self.outbound = outbound
        self.staff = staff
        # Bolt verifies with `secret`; without one (Socket Mode only) it has no HTTP handler at all, see `http`.
        # process_before_response: an event's 200 waits for the listener, which returns once the message is queued.
        self.app = AsyncApp(client=AsyncWebClient(token=token, base_url=api_url,
                                                  retry_handlers=async_retry_handlers()),
                            signing_secret=secret, name="frontdesk", logger=logging.getLogger("frontdesk.slack.bolt"),
                            process_before_response=True)
        self.http = bool(secret)
        self._verifier = SignatureVerifier(secret) if secret else None
        self.tasks: set[asyncio.Future] = set()  # work carried on after Slack got its answer
        self._register()

    def spawn(self, work) -> None:
        """Run `work` after Slack has its answer; kept referenced until done, failures logged."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)

        def done(finished: asyncio.Future) -> None:
            self.tasks.discard(finished)
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
        async def message(event: dict, body: dict, context) -> None:
            await self._on_message(event, context.bot_user_id, body.get("event_id"))

        @app.event(re.compile(".*"))
        async def other_event() -> None:
            """Acknowledged and ignored, so Slack does not retry events we have no use for."""

        @app.action(re.compile(f"^{fmt.CLAIM_ACTION}"))
        async def claim(ack, body: dict, action: dict, respond) -> None:
            await ack()
            self.spawn(self.staff.action("claim", body, action, respond))

        @app.action(re.compile(f"^{fmt.RESOLVE_ACTION}"))
        async def resolve(ack, body: dict, action: dict, respond) -> None:
            await ack()
            self.spawn(self.staff.action("resolve", body, action, respond))

        @app.action(re.compile(f"^{fmt.SUGGEST_ACTION}_"))
        async def suggestion(ack, body: dict, action: dict, respond) -> None:
            await ack()
            self.spawn(self._on_suggestion(body, action, respond))

        @app.command(re.compile("^/"))
        async def command(ack, command: dict, respond) -> None:
            await ack()
            self.spawn(self.staff.command(command, respond))

    # ------------------------------------------------------------------ customers
    async def _on_message(self, event: dict, bot_user_id: str | None, event_id: str | None = None) -> None:
        if not self._from_a_person(event, bot_user_id):
            return
        if event.get("channel_type") == "im":
            await self._customer_message(event["channel"], event, fmt.unescape(str(event.get("text") or "")))
            return
        thread_ts = event.get("thread_ts")
        if thread_ts and thread_ts != event.get("ts"):
            self.spawn(self.staff.thread_reply(event, thread_ts, event_id))  # taken once per event id
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
                                 display_name=await asyncio.to_thread(self.outbound.user_name, user))
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
        self.spawn(self._settle(message, receiving))
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
            return bot.seen(message)
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
                                 display_name=await asyncio.to_thread(self.outbound.user_name, user))
        bot = self.components.need("bot")
        await self._settle(message, asyncio.ensure_future(asyncio.to_thread(bot.receive, message)))


def _mapping(value) -> dict:
    """`value` where it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}
