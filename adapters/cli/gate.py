"""What `--replay` and `--gate` add to `model check|deploy` and `kb check|reload` on the command line.

The server replays its recent traffic (adapters/http/replay_gate.py); the conversation tests run
here, on the candidate (the configured knowledge base with the candidate model, or the configured
model with the candidate knowledge base: docs/CONVERSATION_TESTS.md), in a bot of their own with an
embedded Redis, and their results go to the server with a gated deploy or reload, which decides and
audits. The tests are `--tests`, else FRONTDESK_CONVERSATION_TESTS; with neither, none run and the
gate judges on the replay alone (the report says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adapters.cli.exit_codes import USAGE, fail
from adapters.runtime.settings import Settings, load_settings

err = Console(stderr=True)

ReplayOpt = Annotated[bool, typer.Option("--replay", help="Replay the last days of real traffic through both "
                                                          "versions, and run the conversation tests on the candidate.")]
DaysOpt = Annotated[int | None, typer.Option("--days", min=1, max=35,
                                             help="Days of traffic replayed (default FRONTDESK_REPLAY_DAYS, 7).")]
GateOpt = Annotated[bool, typer.Option("--gate", help="Refuse when the conversation tests fail or too many "
                                                      "replayed decisions change (see --max-changed).")]
MaxChangedOpt = Annotated[float | None, typer.Option(
    "--max-changed", min=0.0, max=1.0, help="With --gate: the share of replayed messages that may change "
                                            "(default FRONTDESK_GATE_MAX_CHANGED, 0.10).")]
TestsOpt = Annotated[Path | None, typer.Option("--tests", help="Conversation tests (YAML file or folder) run on "
                                                               "the candidate; default FRONTDESK_CONVERSATION_TESTS.")]


def settings_here() -> Settings:
    try:
        return load_settings()
    except ValueError as exc:  # a refused setting, named without its value
        raise fail(str(exc)) from None


def candidate_tests(tests: Path | None, **candidate) -> dict | None:
    """The conversation tests run here with `candidate` in place of the configured parts (`model_dir=...` or
    `kb=...`): `{"passed", "failed", "failures"}`, or None when no tests are configured."""
    from adapters.cli.conversation_tests.command import run_tests  # heavy: the bot's components
    from adapters.cli.conversation_tests.spec import MalformedTests

    settings = settings_here()
    tests = tests or settings.conversation_tests
    if tests is None:
        err.print("no conversation tests configured (--tests or FRONTDESK_CONVERSATION_TESTS): the replay alone "
                  "judges the candidate", highlight=False)
        return None
    err.print(f"conversation tests {tests} on the candidate:", highlight=False)
    try:
        result = run_tests([tests], settings.model_copy(update=candidate), out=err)
    except MalformedTests as exc:
        raise fail(str(exc), USAGE) from None
    return {"passed": len(result.outcomes) - len(result.failed), "failed": len(result.failed),
            "failures": [f"{o.conversation.name} ({o.conversation.file}:{o.conversation.line}, step "
                         f"{o.failure.step.number})" for o in result.failed]}


def gate_body(gate: bool, max_changed: float | None, days: int | None, tests: dict | None) -> dict | None:
    if not gate:
        return None
    return {"max_changed_share": max_changed, "days": days, "tests": tests}


def print_replay(console: Console | None, replay: dict | None, tests: dict | None = None) -> None:
    """The replay report (and the tests' results) for a person."""
    out = console or Console()
    if replay is not None:
        out.print(f"replayed {replay['messages']} message(s) of the last {replay['days']} day(s) "
                  f"({replay['texts']} distinct): {replay['changed']} would get another decision "
                  f"({replay['changed_share']:.1%})", highlight=False)
        for change, count in replay["changes"].items():
            if count:
                out.print(f"  {change.replace('_', ' ')}: {count}", highlight=False)
                for sample in replay["samples"].get(change, []):
                    out.print(f"    {sample['text']!r} x{sample['count']}: {sample['serving']} -> "
                              f"{sample['candidate']}", highlight=False, markup=False)
    if tests is not None:
        out.print(f"conversation tests on the candidate: {tests['passed']} passed, {tests['failed']} failed",
                  highlight=False)
        for failure in tests["failures"]:
            out.print(f"  FAIL {failure}", highlight=False, markup=False)


def print_refusal(detail: dict) -> None:
    """A gate's 409: what the replay found, on stderr, before the reason."""
    if detail.get("replay"):
        print_replay(err, detail["replay"])
