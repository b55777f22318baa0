"""`frontdesk test FILE|DIR... [--url URL] [--junit FILE] [--json]`: exit 0 all passed, 1 a failure, 2 a file
that cannot be run as written (`file:line: message`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adapters.cli.conversation_tests import report
from adapters.cli.conversation_tests.drivers import Driver
from adapters.cli.conversation_tests.judge import Judge, not_understood_texts
from adapters.cli.conversation_tests.runner import RunResult, run_all
from adapters.cli.conversation_tests.spec import DEFAULT_CHANNEL, Conversation, MalformedTests, collect, load
from adapters.cli.exit_codes import FAILURE, USAGE, fail
from adapters.runtime.settings import Settings, load_settings
from bot.templates import Templates
from knowledge.wording import read_wording

console = Console()
err = Console(stderr=True)


def test(
    paths: Annotated[list[Path], typer.Argument(metavar="FILE|DIR...", help="Test files (YAML), or folders of them.")],
    url: Annotated[str | None, typer.Option("--url", help="Run against this server (its tokens from "
                                            "FRONTDESK_CHAT_TOKEN and FRONTDESK_ADMIN_TOKEN); else locally.")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write JUnit XML here, for CI.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout (progress on stderr).")] = False,
) -> None:
    """Run conversation tests written in YAML through the bot (docs/CONVERSATION_TESTS.md)."""
    try:
        settings = load_settings()
    except ValueError as exc:  # a refused setting, named without its value
        raise fail(str(exc)) from None
    out = err if as_json else console
    try:
        result = run_tests(paths, settings, url, out)
    except MalformedTests as exc:
        raise fail(str(exc), USAGE) from None
    if junit is not None:
        report.write_junit(result, junit)
    if as_json:
        sys.stdout.write(report.dump_json(result) + "\n")
    if result.failed:
        raise typer.Exit(FAILURE)


def run_tests(paths: list[Path], settings: Settings, url: str | None = None, out: Console = console) -> RunResult:
    """The conversations in `paths` run locally with `settings` (or against `url`), reported on `out` as they go;
    `MalformedTests` before anything runs when a file cannot be run as written."""
    try:
        conversations = load(collect(paths))
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read the tests: {exc}", USAGE) from None
    driver = _driver(url, settings, conversations)
    try:
        # The bot's own wording (its defaults, under the knowledge folder's templates.yaml) tells a "didn't
        # understand" from an answer.
        judge = Judge(not_understood_texts(Templates.over_defaults(read_wording(settings.kb_source)[0])))
        result = run_all(conversations, driver, judge, on_done=lambda outcome: report.print_outcome(out, outcome))
    finally:
        driver.close()
    report.print_summary(out, result)
    return result


def _driver(url: str | None, settings: Settings, conversations: list[Conversation]) -> Driver:
    if url is not None:
        from adapters.cli.conversation_tests.remote import RemoteDriver

        others = sorted({c.channel for c in conversations} - {DEFAULT_CHANNEL})
        if others:
            err.print(f"--url: every conversation goes through POST /chat (channel rest); not {', '.join(others)}",
                      highlight=False)
        try:
            return RemoteDriver(url, settings)
        except ValueError as exc:
            raise fail(str(exc), USAGE) from None
    # Not at the top: the local bot imports the server's components (their metrics set up on import), which
    # `serve` must not load before choosing its metrics folder (adapters/cli/main.py, `shell`).
    from adapters.cli.conversation_tests.local import LocalDriver

    try:
        return LocalDriver(settings, err)
    except RuntimeError as exc:
        raise fail(str(exc)) from None
