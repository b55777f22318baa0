"""Slack text and Block Kit: mrkdwn escaping, splitting within Slack's limits, the messages Frontdesk posts.

Pure functions (no I/O), so the adapter stays about events and API calls and these rules
can be checked on their own. Slack treats `&`, `<` and `>` as control characters in
mrkdwn (`<!channel>` pings everyone, `<http://x|y>` is a link), so every piece of text a
customer or staff member wrote is escaped before it is shown; Slack sends incoming text
escaped the same way, so it is unescaped once on the way in.
"""

from __future__ import annotations

import re

from adapters.channels.citations import PREFIX, cited
from bot.escalations import Escalation, EscalationStatus
from bot.messages import Reply, Source

SECTION_LIMIT = 3000  # characters of text in one section block (and our cap per message)
BUTTON_LABEL_LIMIT = 75  # plain_text of a button
BUTTON_VALUE_LIMIT = 2000
MAX_BUTTONS = 25  # elements in one actions block
TRANSCRIPT_EVENTS = 15
TRANSCRIPT_LINE_LIMIT = 500
FALLBACK_TEXT_LIMIT = 300  # the notification text next to blocks

CLAIM_ACTION = "frontdesk_claim"
RESOLVE_ACTION = "frontdesk_resolve"
SUGGEST_ACTION = "frontdesk_suggest"

REASONS = {
    "asked_for_human": "Asked for a person",
    "negative_message": "Very negative message",
    "negative_trend": "Several negative messages",
    "repeated_fallbacks": "The bot could not answer, repeatedly",
}
ROLES = {"customer": "Customer", "bot": "Bot", "system": "System", "unanswered": None}

_ENTITY_TAIL = re.compile(r"&[a-z]{0,4}$")


def escape(text: str) -> str:
    """User text made inert for mrkdwn: `&` first, so the entities added for `<` and `>` survive."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Text as the person typed it, from Slack's escaped event text (`&amp;` last, so `&amp;lt;` stays `&lt;`)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, else a line, else a space, else anywhere.

    Expects escaped text: a hard cut never falls inside an entity such as `&amp;`.
    """
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            cut = window.rfind(separator)
            if cut > limit // 4:  # a cut near the start would leave a tiny piece; try a finer separator
                break
        if cut <= limit // 4:
            cut = limit
            tail = _ENTITY_TAIL.search(window)
            if tail:
                cut = tail.start() or limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces or [""]


def _link_target(url: str) -> str:
    """A (safe, http/https) URL as the target of a mrkdwn link: `&` as Slack's entity, and `<`, `>`, `|`
    (which would end the link or its target) percent-encoded, which means the same in a URL."""
    return url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def citation(source: Source | dict | None) -> str:
    """mrkdwn for an article citation ("Source: <url|title › section>"); "" for an FAQ answer or none.

    The label is escaped like any text, and a `|` in it becomes "∣": Slack ends a link's target
    at the first `|`, so one in the label would garble the link. A URL that is not http(s) gives
    the label as plain text, no link.
    """
    found = cited(source)
    if found is None:
        return ""
    label, url = found
    if not url:
        return f"{PREFIX}{escape(label)}"
    return f"{PREFIX}<{_link_target(url)}|{escape(label).replace('|', '∣')}>"


def _section(mrkdwn: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict:
    label = text if len(text) <= BUTTON_LABEL_LIMIT else text[:BUTTON_LABEL_LIMIT - 1] + "…"
    button = {"type": "button", "text": {"type": "plain_text", "text": label, "emoji": True},
              "action_id": action_id, "value": value}
    if style:
        button["style"] = style
    return button


def reply_messages(reply: Reply) -> list[dict]:
    """`chat.postMessage` arguments (text, and blocks where there are buttons) for one reply, in order."""
    body = escape(reply.text)
    if reply.sender == "agent" and reply.agent:
        body = f"*{escape(reply.agent)}* (support team): {body}"
    messages: list[dict] = [{"text": piece} for piece in split_text(body)]
    suggestions = [s for s in reply.suggestions if s.strip()][:MAX_BUTTONS]
    cite = citation(reply.source)
    if suggestions or cite:
        last = messages[-1]
        blocks = [_section(last["text"] or " ")]
        if cite:  # small print under the answer; also in the notification text, which replaces the blocks
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": cite}]})
            last["text"] = f"{last['text']}\n\n{cite}"
        if suggestions:
            # The button's value is what the customer "says" when clicking it.
            buttons = [_button(s, f"{SUGGEST_ACTION}_{i}", s[:BUTTON_VALUE_LIMIT]) for i, s in enumerate(suggestions)]
            blocks.append({"type": "actions", "elements": buttons})
        last["blocks"] = blocks
    return messages


def chosen_suggestion_blocks(message_text: str, choice: str) -> list[dict]:
    """The suggestion message after a click: the buttons replaced by what was picked."""
    return [_section(message_text or " "),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"You picked: {escape(choice)}"}]}]


def _transcript_lines(transcript: list[dict]) -> str:
    lines: list[str] = []
    for event in transcript[-TRANSCRIPT_EVENTS:]:
        role = event.get("role", "")
        if role == "agent":
            label = escape(str(event.get("by") or event.get("agent") or "Agent"))
        else:
            label = ROLES.get(role, escape(role.title()))
        if label is None:
            continue  # an "unanswered" marker duplicates the customer's line just above it
        text = str(event.get("text", ""))
        if len(text) > TRANSCRIPT_LINE_LIMIT:
            text = text[:TRANSCRIPT_LINE_LIMIT] + "…"
        line = f"*{label}:* {escape(text)}"
        found = cited(event.get("source"))
        if found:
            line += f" (source: {escape(found[0])})"
        lines.append(line.replace("\n", "\n      "))
    # Keep the newest lines when the section would overflow: they matter most to whoever picks it up.
    budget = SECTION_LIMIT - 100
    kept: list[str] = []
    for line in reversed(lines):
        if sum(len(k) + 1 for k in kept) + len(line) > budget:
            kept.append("_… earlier messages omitted_")
            break
        kept.append(line)
    return "\n".join(reversed(kept)) or "_(no messages)_"


def escalation_message(escalation: Escalation, transcript: list[dict]) -> dict:
    """`chat.postMessage`/`chat.update` arguments for an escalation post, drawn for its current status."""
    escalation_id = escalation.id
    status = escalation.status
    reason = REASONS.get(escalation.reason, escape(escalation.reason or "escalated"))
    customer = escape(escalation.user_id or "?")
    channel = escape(escalation.channel or "?")
    if status == EscalationStatus.CLAIMED:
        state = f"Claimed by {escape(escalation.agent or '?')}"
    elif status == EscalationStatus.RESOLVED:
        state = f"Resolved by {escape(escalation.resolved_by or escalation.agent or '?')}"
    elif status == EscalationStatus.EXPIRED:
        state = "Expired: nobody claimed it in time"
    else:
        state = "Waiting for someone to claim it"
    fields = [f"*Reason*\n{reason}", f"*Customer*\n{customer}", f"*Channel*\n{channel}", f"*Status*\n{state}"]
    if escalation.out_of_hours:  # bot.hours: the customer was told when staff are back
        fields.append("*Queued*\nOut of hours")
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Escalation {escalation_id}"[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        _section(f"*Transcript (last {TRANSCRIPT_EVENTS} events)*\n{_transcript_lines(transcript)}"),
    ]
    buttons = []
    if status == EscalationStatus.OPEN:
        buttons.append(_button("Claim", f"{CLAIM_ACTION}:{escalation_id}", escalation_id, "primary"))
    if status in (EscalationStatus.OPEN, EscalationStatus.CLAIMED):
        buttons.append(_button("Resolve", f"{RESOLVE_ACTION}:{escalation_id}", escalation_id))
    if buttons:
        blocks.append({"type": "actions", "block_id": f"escalation:{escalation_id}", "elements": buttons})
    hint = {EscalationStatus.RESOLVED: "Resolved: the bot has the conversation again.",
            EscalationStatus.EXPIRED: "Expired unclaimed: the bot has the conversation again."}.get(
        status, "Reply in this thread to answer the customer.")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": hint}]})
    text = f"Escalation {escalation_id}: {reason} ({channel} customer {customer}). {state}."
    return {"text": text[:FALLBACK_TEXT_LIMIT], "blocks": blocks}


def reminder_text(escalation: Escalation, minutes: float) -> str:
    return f":bell: Still unclaimed after {minutes:.0f} min: escalation {escape(escalation.id)} needs someone."


def customer_relay_text(text: str) -> str:
    """A customer's new message, as posted into the escalation thread."""
    return f"*Customer:* {escape(text)}"
