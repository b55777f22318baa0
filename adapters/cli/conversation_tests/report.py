"""The three ways a run is reported: lines for a person (rich), one JSON object (`--json`), JUnit XML
(`--junit FILE`, one testcase per conversation, for CI). Each failure names the test, the step (its number
and text), what was expected and what came back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from adapters.cli.conversation_tests.runner import Outcome, RunResult, StepFailure


def failure_lines(failure: StepFailure) -> list[str]:
    """What went wrong at the failing step, one line each (without the test's name)."""
    if failure.error:
        return [f"{failure.step.label}: {failure.error}"]
    return [f"{failure.step.label}: expected {m.expected}, got {m.got} (line {m.line})" for m in failure.mismatches]


def print_outcome(console: Console, outcome: Outcome) -> None:
    c = outcome.conversation
    where = f"{c.file}:{c.line}"
    if outcome.passed:
        console.print(f"[green]PASS[/] {escape(c.name)} [dim]({where}, {outcome.seconds:.2f} s)[/]", highlight=False,
                      soft_wrap=True)
        return
    console.print(f"[bold red]FAIL[/] {escape(c.name)} [dim]({where})[/]", highlight=False, soft_wrap=True)
    for line in failure_lines(outcome.failure):
        console.print(f"     {escape(line)}", highlight=False, soft_wrap=True)


def print_summary(console: Console, result: RunResult) -> None:
    failed, total = len(result.failed), len(result.outcomes)
    colour = "red" if failed else "green"
    console.print(f"[bold {colour}]{total - failed} passed, {failed} failed[/] of {total} conversation(s) in "
                  f"{result.seconds:.1f} s ({escape(result.where)})", highlight=False, soft_wrap=True)


def as_json(result: RunResult) -> dict:
    return {"passed": not result.failed, "where": result.where, "seconds": round(result.seconds, 3),
            "total": len(result.outcomes), "failed": len(result.failed),
            "tests": [_outcome_json(o) for o in result.outcomes]}


def _outcome_json(o: Outcome) -> dict:
    out = {"name": o.conversation.name, "file": str(o.conversation.file), "line": o.conversation.line,
           "channel": o.conversation.channel, "passed": o.passed, "seconds": round(o.seconds, 3),
           "steps": len(o.conversation.steps), "steps_run": o.steps_run}
    if o.failure is not None:
        f = o.failure
        out["failure"] = {
            "step": f.step.number, "line": f.step.line, "text": f.step.user if f.step.user is not None else
            f"{f.step.staff} {f.step.staff_text}".rstrip(), "error": f.error or None, "replies": f.replies,
            "mismatches": [{"check": str(m.check), "expected": m.expected, "got": m.got, "line": m.line}
                           for m in f.mismatches],
            "message": "; ".join(failure_lines(f)),
        }
    return out


def write_junit(result: RunResult, path: Path) -> None:
    """JUnit XML as CI servers read it: a testsuite per file, a testcase per conversation, a failure per test."""
    root = ET.Element("testsuites", name="frontdesk conversation tests", tests=str(len(result.outcomes)),
                      failures=str(len(result.failed)), time=f"{result.seconds:.3f}")
    suites: dict[str, ET.Element] = {}
    for o in result.outcomes:
        file = str(o.conversation.file)
        suite = suites.get(file)
        if suite is None:
            suite = suites[file] = ET.SubElement(root, "testsuite", name=file, tests="0", failures="0", time="0")
        suite.set("tests", str(int(suite.get("tests")) + 1))
        suite.set("time", f"{float(suite.get('time')) + o.seconds:.3f}")
        case = ET.SubElement(suite, "testcase", name=o.conversation.name, classname=Path(file).stem,
                             file=file, line=str(o.conversation.line), time=f"{o.seconds:.3f}")
        if o.failure is not None:
            suite.set("failures", str(int(suite.get("failures")) + 1))
            lines = failure_lines(o.failure)
            failure = ET.SubElement(case, "failure", message=lines[0] if lines else "failed")
            failure.text = "\n".join([*lines, f"replies: {o.failure.replies}" if o.failure.replies else ""]).strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def dump_json(result: RunResult) -> str:
    return json.dumps(as_json(result), ensure_ascii=False)
