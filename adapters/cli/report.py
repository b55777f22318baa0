"""`frontdesk report --week [--json]`: the last 7 days' figures for a team meeting, from a running server.

It asks the server (`--url`, the admin token as every server command finds it: `adapters.cli.server`)
for `GET /admin/stats?days=7` and prints a Markdown digest: conversations, resolved by the bot, handed
to staff, reopened, the resolution and reopen rates (the rule: `bot.resolution`, docs/SUPPORT_DESK.md
"Resolution figures"), the same per channel, the top topics by volume with their rates, satisfaction
(CSAT) and the top unanswered questions. Where the server groups unanswered messages into topics
(`GET /admin/topics` answers 200), their top 5 by label and size are added; a server without that
route leaves the section out, silently. `--json` prints one JSON object with the same figures.

Exit codes (adapters/cli/exit_codes.py): 0 printed, 1 the server cannot be reached or refuses, 2 no
period given (`--week` is the one there is).
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from typing import Annotated

import typer

from adapters.cli.exit_codes import fail, usage
from adapters.cli.server import admin_request

WEEK = 7
TOP_TOPICS = 10
TOP_UNANSWERED = 10
TOP_CLUSTERS = 5
DEFAULT_URL = "http://127.0.0.1:8000"
FIGURES = ("conversations", "resolved_by_bot", "handed_to_staff", "reopened", "rate", "reopen_rate")
HEADINGS = ("Conversations", "Resolved by the bot", "Handed to staff", "Reopened", "Resolution rate", "Reopen rate")
DEFINITION = ("Resolved by the bot: answered (an FAQ entry, an article or an intent's own reply), never handed to a "
              "person, the customer not back with the same topic within the resolution window, and not rated 1-2; "
              "counted per conversation and UTC day.")


def report(
    week: Annotated[bool, typer.Option("--week", help="The last 7 UTC days, today included.")] = False,
    url: Annotated[str, typer.Option("--url", help="Base URL of the running server.")] = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """A digest of the week's resolution figures, topics, CSAT and unanswered questions (Markdown or JSON)."""
    if not week:
        raise usage("say which period to report: --week (the last 7 days)")
    response = admin_request("GET", url, f"/admin/stats?days={WEEK}", timeout=60)
    if response.status_code != 200:
        raise fail(f"server answered {response.status_code}: {_detail(response)}")
    found = digest(response.json(), _clusters(url))
    if as_json:
        sys.stdout.write(json.dumps(found, ensure_ascii=False) + "\n")
        return
    typer.echo(markdown(found), nl=False)


def _detail(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:300]


def _clusters(url: str) -> list[dict] | None:
    """The server's top unanswered topics (`GET /admin/topics`), or None where it has no such route or fails."""
    response = admin_request("GET", url, f"/admin/topics?days={WEEK}", timeout=120)
    if response.status_code != 200:
        return None
    try:
        topics = response.json()
        return [{"label": str(t["label"]), "size": int(t["size"])} for t in topics[:TOP_CLUSTERS]]
    except (ValueError, KeyError, TypeError):  # a shape this version does not know: left out, as when absent
        return None


def digest(stats: dict, clusters: list[dict] | None) -> dict:
    """The figures the report prints, from `GET /admin/stats`'s answer (and the topics, when there are any)."""
    resolution = stats["resolution"]
    since = date.fromisoformat(stats["since"])
    found = {
        "period": {"days": stats["days"], "since": stats["since"],
                   "until": (since + timedelta(days=stats["days"] - 1)).isoformat()},
        "resolution": {name: resolution.get(name) for name in (*FIGURES, "answered")},
        "by_channel": {name: _figures(f) for name, f in resolution["by_channel"].items()},
        "top_topics": [{"topic": name, **_figures(f)}
                       for name, f in list(resolution["by_topic"].items())[:TOP_TOPICS]],
        "csat": {"count": stats["csat"]["count"], "average": stats["csat"]["average"]},
        "top_unanswered": [{"question": q, "count": n} for q, n in stats["top_unanswered"][:TOP_UNANSWERED]],
    }
    if clusters is not None:
        found["unanswered_topics"] = clusters
    return found


def _figures(figures: dict) -> dict:
    return {name: figures.get(name) for name in FIGURES}


def markdown(found: dict) -> str:
    period, total = found["period"], found["resolution"]
    lines = [f"# Frontdesk weekly report, {period['since']} to {period['until']}", "",
             "| | |", "| --- | --: |",
             f"| Conversations | {total['conversations']} |",
             f"| Resolved by the bot | {total['resolved_by_bot']} ({_rate(total['rate'])}) |",
             f"| Handed to staff | {total['handed_to_staff']} |",
             f"| Reopened | {total['reopened']} ({_rate(total['reopen_rate'])} of answered conversations) |",
             "", DEFINITION, ""]
    lines += ["## Per channel", "", *_table("Channel", found["by_channel"].items()), ""]
    lines += ["## Top topics", "", *_table("Topic", ((t["topic"], t) for t in found["top_topics"])), ""]
    csat = found["csat"]
    lines += ["## Satisfaction (CSAT)", "",
              f"{csat['count']} ratings, average {csat['average']} of 5." if csat["count"] else "No ratings.", ""]
    lines += ["## Top unanswered questions", ""]
    lines += [f"{i}. {_cell(q['question'])} ({q['count']})" for i, q in enumerate(found["top_unanswered"], 1)] \
        or ["None."]
    lines.append("")
    if "unanswered_topics" in found:
        lines += ["## Unanswered topics", ""]
        lines += [f"{i}. {_cell(t['label'])} ({t['size']} messages)"
                  for i, t in enumerate(found["unanswered_topics"], 1)] or ["None."]
        lines.append("")
    return "\n".join(lines)


def _table(first: str, rows) -> list[str]:
    rows = list(rows)
    if not rows:
        return ["None."]
    out = [f"| {first} | " + " | ".join(HEADINGS) + " |", "| --- |" + " --: |" * len(HEADINGS)]
    for name, figures in rows:
        cells = [str(figures[n]) for n in FIGURES[:4]] + [_rate(figures["rate"]), _rate(figures["reopen_rate"])]
        out.append(f"| {_cell(name)} | " + " | ".join(cells) + " |")
    return out


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f} %"


def _cell(text: str) -> str:
    """Customers' words (masked by the server) and topic names, safe inside a Markdown table or list."""
    return str(text).replace("|", "\\|").replace("\n", " ")
