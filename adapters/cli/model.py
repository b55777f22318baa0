"""`frontdesk model deploy|status|restore|check` and `frontdesk review export`: the model lifecycle from a terminal.

`--replay` and `--gate` (adapters/cli/gate.py) add real traffic and the conversation tests to a check or deploy.

Each talks to a running server (`--url`, token from FRONTDESK_ADMIN_TOKEN or the one `frontdesk
run` wrote), so the fleet sees exactly what the HTTP routes do (docs/MODEL_LIFECYCLE.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from adapters.cli.exit_codes import fail as _fail
from adapters.cli.gate import (
    DaysOpt,
    GateOpt,
    MaxChangedOpt,
    ReplayOpt,
    TestsOpt,
    candidate_tests,
    gate_body,
    print_refusal,
    print_replay,
)
from adapters.cli.server import admin_request

model_app = typer.Typer(help="Deploy, restore, inspect and check NLU models on a running server.",
                        no_args_is_help=True)
review_app = typer.Typer(help="The review inbox: what the bot was unsure of.", no_args_is_help=True)

UrlOpt = Annotated[str, typer.Option("--url", help="Base URL of the running server.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer.")]
DEFAULT_URL = "http://127.0.0.1:8000"


def _call(method: str, url: str, path: str, body: dict | None = None, timeout: float = 300):
    response = admin_request(method, url, path, body, timeout)
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if isinstance(detail, dict):  # a refused deploy: the comparison or replay behind it, then the reason
            if detail.get("check"):
                _print_check(detail["check"])
            print_refusal(detail)
            detail = detail.get("reason", "")
        raise _fail(f"server answered {response.status_code}: {detail}")
    return response


def _print_check(check: dict) -> None:
    lab, recent = check["labelled"], check["recent"]
    typer.echo(f"serving {check['serving']}  candidate {check['candidate']}")
    if lab["n"]:
        typer.echo(f"labelled review items: {lab['n']}; right: serving {lab['serving_correct']} "
                   f"({lab['serving_accuracy']:.1%}), candidate {lab['candidate_correct']} "
                   f"({lab['candidate_accuracy']:.1%})")
    else:
        typer.echo("labelled review items: none yet (label some in the console or with POST /admin/review/{id})")
    for name in ("fixed", "broken"):
        for ex in lab[name]:
            typer.echo(f"  {name}: {ex['text']!r} is {ex['label']}: serving {ex['serving']}, "
                       f"candidate {ex['candidate']}")
    typer.echo(f"recent messages: {recent['n']}; decision would change for {recent['decision_changed']}, "
               f"intent for {recent['intent_changed']}")
    for ex in recent["examples"]:
        typer.echo(f"  {ex['text']!r}: {ex['serving']['decision']} ({ex['serving']['intent']}) -> "
                   f"{ex['candidate']['decision']} ({ex['candidate']['intent']})")


@model_app.command("deploy")
def deploy(
    path: Annotated[Path, typer.Argument(help="Model directory (the same path on every worker).")],
    url: UrlOpt = DEFAULT_URL,
    force: Annotated[bool, typer.Option("--force", help="Deploy even if worse on labelled review items, or "
                                                        "refused by the gate (audited).")] = False,
    gate: GateOpt = False,
    max_changed: MaxChangedOpt = None,
    days: DaysOpt = None,
    tests: TestsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a model directory on the server, then switch every worker to it (with --gate, only when the
    conversation tests pass on it and few replayed decisions change)."""
    ran = candidate_tests(tests, model_dir=path.resolve()) if gate else None
    body = _call("POST", url, "/admin/model/deploy", {"path": str(path.resolve()), "force": force,
                                                      "gate": gate_body(gate, max_changed, days, ran)}).json()
    if as_json:
        sys.stdout.write(json.dumps(body) + "\n")
        return
    print_replay(None, body.get("replay"), ran)
    typer.echo(f"deployed {body['version']}; every worker switches within seconds (`frontdesk model status`)")


@model_app.command("status")
def status(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """The version the fleet serves, the previous one, and what each worker serves now."""
    body = _call("GET", url, "/admin/model").json()
    if as_json:
        sys.stdout.write(json.dumps(body) + "\n")
        return
    typer.echo(f"version {body['version']}  (previous {body.get('previous') or '-'})")
    for worker in body["workers"]:
        note = f"  error: {worker['error']}" if worker.get("error") else ""
        typer.echo(f"  {worker['id']}: {worker['version']}{note}")


@model_app.command("restore")
def restore(url: UrlOpt = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Bring the previous version back on every worker."""
    body = _call("POST", url, "/admin/model/restore").json()
    if as_json:
        sys.stdout.write(json.dumps(body) + "\n")
        return
    typer.echo(f"restored {body['version']} on every worker")


@model_app.command("check")
def check(
    candidate: Annotated[Path, typer.Option("--candidate", help="Model directory to compare with the serving one.")],
    url: UrlOpt = DEFAULT_URL,
    replay: ReplayOpt = False,
    days: DaysOpt = None,
    tests: TestsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Serving model against a candidate, on labelled review items and recent messages (with --replay, on the
    last days of real traffic, and the conversation tests on the candidate)."""
    body = _call("POST", url, "/admin/model/check", {"candidate": str(candidate.resolve()), "replay": replay,
                                                     "days": days}).json()
    body["tests"] = candidate_tests(tests, model_dir=candidate.resolve()) if replay else None
    if as_json:
        sys.stdout.write(json.dumps(body) + "\n")
        return
    _print_check(body)
    print_replay(None, body.get("replay"), body["tests"])
    if body["worse"]:
        typer.echo("the candidate is worse on labelled items: `model deploy` refuses it without --force")


@review_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="CSV file to write (text,intent).")],
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Write the intent-labelled review items as `text,intent` for `frontdesk train`."""
    response = _call("GET", url, "/admin/review/export")
    out.write_text(response.text, encoding="utf-8")
    rows = max(0, len(response.text.strip().splitlines()) - 1)
    typer.echo(f"{rows} labelled item(s) written to {out}")
