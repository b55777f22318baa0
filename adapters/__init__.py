"""The outermost layer: wires the NLU model, the knowledge base and the bot core to the world, by job.

`channels/` (where customers talk: web chat, `POST /chat`, Slack, Telegram, the terminal), `http/`
(the FastAPI app, its routers and what they depend on), `cli/` (the `frontdesk` command), `runtime/`
(settings, the long-lived parts a process holds, start-up) and `static/` (the pages' files).
runtime imports none of the others; channels build on runtime (and on http/dependencies.py for their
routes); http/app.py mounts the channels; cli starts it all. bot/, nlu/ and knowledge/ never import adapters/.
"""
