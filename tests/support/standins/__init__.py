"""Stand-in servers for the platform APIs the adapters talk to (real HTTP on 127.0.0.1)."""
