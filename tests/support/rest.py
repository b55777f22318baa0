"""The REST channel's token in tests: an app that takes `POST /chat` gets FRONTDESK_CHAT_TOKEN=CHAT_TOKEN (the
`desk_client` fixture sets it), and its callers send `CHAT_AUTH` (adapters/http/api_gate.py)."""

CHAT_TOKEN = "chat-token-for-tests-0123456789abcdef"
CHAT_AUTH = {"Authorization": f"Bearer {CHAT_TOKEN}"}
