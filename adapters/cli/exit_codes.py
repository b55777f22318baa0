"""How every `frontdesk` command reports an error, and the exit codes scripts rely on (docs/OPERATIONS.md).

0 success, 1 a failure (a file, a model, a server, Redis: something the command could not do), 2 a usage error
(the command line itself is wrong: click's own errors, and `usage()` for option combinations it cannot see).
The root command group (`FrontdeskGroup`) turns the operational errors no command caught into a one-line
`error: …` and exit 1, so sub-commands added with `app.add_typer` follow the same rule without doing anything.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import httpx
import redis
import typer
from typer.core import TyperGroup

FAILURE = 1
USAGE = 2


def fail(message: str, code: int = FAILURE) -> typer.Exit:
    """Print `error: message` to stderr and return the Exit (code 1: a failure) to raise.

    Plain text, never wrapped: error lines carry file:line locations that tools grep for.
    """
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def usage(message: str) -> typer.Exit:
    """The command line is wrong in a way click cannot check (e.g. two options that exclude each other): exit 2."""
    return fail(message, USAGE)


def _operational_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "could not do it" rather than a bug: reported in one line, without a traceback.

    Anything else keeps Python's traceback (a bug should be reported with one) and still exits 1.
    """
    return OSError, redis.RedisError, httpx.HTTPError


class FrontdeskGroup(TyperGroup):
    """The root group: every command under it, however registered, fails with exit 1 and one clear line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _operational_errors() as exc:
            # The type names the kind of failure (ConnectionError, PermissionError, ...); the text says where.
            raise fail(f"{type(exc).__name__}: {exc}") from None


def version_callback(value: bool) -> None:
    """`frontdesk --version`: the installed package's version, then exit 0."""
    if value:
        try:
            typer.echo(f"frontdesk {version('frontdesk')}")
        except PackageNotFoundError:  # run from a checkout that was never `pip install`ed
            typer.echo("frontdesk (not installed: run `pip install -e .`)")
        raise typer.Exit(0)
