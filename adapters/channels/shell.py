"""The terminal channel: `frontdesk shell` talks to the same bot core as every other channel.

It builds the same components a server process holds (model, knowledge base, Redis,
bot), reads lines from the terminal as one customer's messages, and prints the replies.
Suggestions are numbered: typing the number sends that suggestion. Messages staff send
while the shell runs (claim, reply, hand-back from the console or Slack) appear live.
"""

from __future__ import annotations

import uuid

from rich.console import Console
from rich.markup import escape

from adapters.channels.citations import PREFIX, cited
from adapters.runtime.components import Components
from adapters.runtime.settings import Settings
from bot.messages import InboundMessage, Reply

CHANNEL = "shell"
STYLES = {"bot": "bold green", "agent": "bold magenta", "system": "bold yellow"}


def print_reply(console: Console, reply: Reply) -> None:
    who = reply.agent if reply.sender == "agent" and reply.agent else reply.sender
    console.print(f"[{STYLES.get(reply.sender, 'bold')}]{escape(who)}>[/] {escape(reply.text)}", highlight=False)
    found = cited(reply.source)
    if found:  # the article the answer quotes, with its address (plain text: terminals differ on links)
        label, url = found
        console.print(f"    [dim]{escape(PREFIX + label)}{escape(f' ({url})') if url else ''}[/]", highlight=False)
    for number, suggestion in enumerate(reply.suggestions, 1):
        console.print(f"    [cyan]{number}[/] {escape(suggestion)}", highlight=False)


def start_components(settings: Settings) -> Components:
    """A server process's parts (model, knowledge base, Redis, bot), loaded and ready; RuntimeError naming what
    failed. Shared with `frontdesk test`, which runs its conversations through a bot built the same way."""
    components = Components(settings)
    components.start()
    components.loaded.wait()
    if components.bot is None:
        missing = ", ".join(f"{k}: {v}" for k, v in components.errors.items()) or ", ".join(components.missing())
        components.close()
        raise RuntimeError(f"the bot could not start ({missing})")
    return components


def run_shell(settings: Settings, console: Console, user: str | None = None,
              read=None) -> None:
    """Chat until end of input or /quit. `read` replaces the terminal prompt (for tests and pipes)."""
    components = start_components(settings)
    bot = components.bot
    session = user or f"shell-{uuid.uuid4().hex[:8]}"
    unwatch = bot.outbox.watch(f"{CHANNEL}:{session}", lambda reply: print_reply(console, reply))
    read = read or (lambda: console.input("[bold cyan]you>[/] "))
    suggestions: tuple[str, ...] = ()
    console.print(f"[bold]Frontdesk shell[/] (conversation {session}) - type a message, /quit to leave.")
    try:
        while True:
            try:
                text = read().strip()
            except (EOFError, KeyboardInterrupt):
                break
            if text in ("/quit", "/exit"):
                break
            if not text:
                continue
            if text.isdigit() and 0 < int(text) <= len(suggestions):
                text = suggestions[int(text) - 1]
            handled = bot.receive(InboundMessage(CHANNEL, session, session, text, message_id=uuid.uuid4().hex))
            suggestions = ()
            for reply in handled.replies:
                print_reply(console, reply)
                suggestions = reply.suggestions or suggestions
    finally:
        unwatch()
        components.close()
