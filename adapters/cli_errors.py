"""How every `frontdesk` command reports a user error."""

from __future__ import annotations

import typer


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` to stderr and return the Exit to raise.

    Plain text, never wrapped: error lines carry file:line locations that tools grep for.
    """
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
