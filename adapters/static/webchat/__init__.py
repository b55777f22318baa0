"""The web chat page: HTML, CSS and JavaScript served by adapters/channels/web.py."""
