"""HTTP: the FastAPI application (`app`), its routers one per area, and what they depend on (`dependencies`).

Routers: `admin` (escalations, FAQ, statistics, customers' data, the audit log) behind `admin_gate`
(who may use /admin), `model_admin`, `review_admin`, `desk_admin` and `desk_page` (the staff desk),
`predict_api` (`POST /predict`). Middleware and handlers: `address_limit` (requests per client
address) and `validation_errors` (the 422 answer). The channels' own routes live in adapters.channels.
"""
