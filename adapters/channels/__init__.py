"""The channels customers talk through: one module or package per platform.

`web` (the chat page and its WebSocket), `rest` (`POST /chat`), `slack`, `telegram` and `shell`
(the terminal). Every channel the server mounts (web, rest, slack, telegram) exports the same two
names: `router`, its HTTP routes, always mounted so a platform that is not configured answers
clearly instead of 404-ing by accident; and `async start(components) -> adapter | None`, the
running adapter, which the app registers in `components.channels` (adapters/runtime/channel_registry.py)
and stops with itself; None when the channel needs no adapter or its settings are absent. `shell`
is run by `frontdesk shell`, not by the server. `citations` renders an answer's source for all of them.
"""
