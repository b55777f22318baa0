"""`frontdesk staff add | list | token | remove`: staff accounts, straight in the server's Redis.

No running server is needed: the command finds Redis the way the server does (`REDIS_URL` and
the `REDIS_CLUSTER` / `REDIS_SENTINELS` settings through `adapters.runtime.redis_client`, or
the embedded Redis under `FRONTDESK_HOME`, shared with a `frontdesk run` that is up, started
and stopped again when none is). Every worker reads accounts from Redis on each request, so a
new member can sign in at once and a removed one is refused at once. A token works for
FRONTDESK_STAFF_TOKEN_DAYS, until the member signs out of the console, or until `token` issues a
new one. Each change is written to the audit log with the actor "cli".
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import redis
import typer
from rich.console import Console

from adapters.cli.exit_codes import fail as _fail
from adapters.cli.exit_codes import usage
from adapters.runtime.embedded_redis import start_embedded_redis, stop_embedded_redis
from adapters.runtime.redis_client import redis_client
from adapters.runtime.settings import load_settings
from bot.audit import AuditLog
from bot.keys import Keys
from bot.staff import Role, StaffDirectory, StaffError, check_name

staff_app = typer.Typer(help="Staff accounts for the console and the /admin routes.", no_args_is_help=True)
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="dotenv file, as for `frontdesk serve`.")]


@contextmanager
def _redis(config: Path | None) -> Iterator[object]:
    """A client for the server's Redis; an embedded one started here is stopped on the way out."""
    try:
        settings = load_settings(config)
    except (FileNotFoundError, ValueError) as exc:
        raise usage(str(exc)) from None
    embedded = None
    try:
        if settings.redis_url:
            client = redis_client(settings.redis_url, cluster=settings.redis_cluster,
                                  sentinels=settings.redis_sentinels, sentinel_master=settings.redis_sentinel_master)
        else:
            embedded, _ = start_embedded_redis(settings, err)
            client = embedded
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise _fail(f"cannot reach Redis ({type(exc).__name__}: {exc})") from None
    try:
        yield client, settings
    except redis.RedisError as exc:
        raise _fail(f"Redis failed ({type(exc).__name__}: {exc})") from None
    finally:
        if embedded is not None:
            stop_embedded_redis(embedded)


def _parts(client, settings):
    keys = Keys(settings.redis_prefix)
    return (StaffDirectory(client, keys, token_days=settings.staff_token_days),
            AuditLog(client, keys, days=settings.audit_days))


def _show_token(member, token: str, as_json: bool, said: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"name": member.name, "role": str(member.role), "token": token,
                                     "expires_at": member.expires_at}) + "\n")
        return
    typer.echo(f"{said}. Their token, shown this once (only its hash is kept), works until {_when(member.expires_at)}:")
    typer.echo(token)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "?"


@staff_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The member's name, as the audit log and transcripts show it.")],
    role: Annotated[str, typer.Option("--role", help="agent (queue, review, stats, console) or admin (all).")],
    as_json: Annotated[bool, typer.Option("--json", help='Print {"name", "role", "token", "expires_at"}.')] = False,
    config: ConfigOpt = None,
) -> None:
    """Create a staff member and print their token, once: only its hash is stored."""
    try:  # usage errors before touching Redis
        check_name(name)
        role = Role(role)
    except StaffError as exc:
        raise usage(str(exc)) from None
    except ValueError:
        raise usage(f"--role {role!r}: one of {', '.join(r.value for r in Role)}") from None
    with _redis(config) as (client, settings):
        directory, audit = _parts(client, settings)
        try:
            member, token = directory.add(name, role)
        except StaffError as exc:
            raise _fail(str(exc)) from None
        audit.record("cli", "staff.add", member.name)
    _show_token(member, token, as_json, f"added {member.name} ({member.role})")


@staff_app.command("token")
def token(
    name: Annotated[str, typer.Argument(help="The member who needs a new token (theirs expired, or they signed out).")],
    as_json: Annotated[bool, typer.Option("--json", help='Print {"name", "role", "token", "expires_at"}.')] = False,
    config: ConfigOpt = None,
) -> None:
    """Issue a member a new token and print it, once; their previous token stops working."""
    with _redis(config) as (client, settings):
        directory, audit = _parts(client, settings)
        try:
            member, new_token = directory.reissue(name)
        except StaffError as exc:
            raise _fail(str(exc)) from None
        audit.record("cli", "staff.token", member.name)
    _show_token(member, new_token, as_json, f"new token for {member.name} ({member.role})")


@staff_app.command("list")
def list_members(
    as_json: Annotated[bool, typer.Option(
        "--json", help='A JSON list of {"name", "role", "created_at", "token_expires_at"}.')] = False,
    config: ConfigOpt = None,
) -> None:
    """Every staff member and their role (tokens are never shown again)."""
    with _redis(config) as (client, settings):
        members = _parts(client, settings)[0].list()
    if as_json:
        sys.stdout.write(json.dumps([m.to_dict() for m in members]) + "\n")
        return
    if not members:
        typer.echo("no staff members yet: add one with `frontdesk staff add NAME --role agent|admin`")
    for member in members:
        typer.echo(f"{member.name}\t{member.role}\tadded {_when(member.created_at)}\t"
                   f"token until {_when(member.expires_at)}")


@staff_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The member to remove; their token stops working at once.")],
    config: ConfigOpt = None,
) -> None:
    """Remove a staff member."""
    with _redis(config) as (client, settings):
        directory, audit = _parts(client, settings)
        try:
            directory.remove(name)
        except StaffError as exc:
            raise _fail(str(exc)) from None
        audit.record("cli", "staff.remove", name)
    typer.echo(f"removed {name}")
