"""The `scale` section of docs/BENCHMARKS.md, rendered from bench/results/scale.json (every part run so far)."""

from __future__ import annotations

import statistics

from bench.report import machine, runs_summary, table

TITLE = "## Worker memory, search at scale and cold start (`python -m bench.scale`)"


def _mb(value: float) -> str:
    return f"{value:,.0f}"


def search_section(part: dict) -> str:
    rows, notes = [], []
    for level in part["levels"]:
        if "skipped" in level:
            notes.append(f"{level['passages']:,} passages skipped: {level['skipped']}.")
            continue
        build = f"{level['build_s']:.1f}" + (f" (FAISS {level['faiss_build_s']:.1f})" if "faiss_build_s" in level
                                             else f" (train {level['train_s']:.1f}, add {level['add_s']:.1f})")
        rows.append([f"{level['passages']:,}", f"{level['rows']:,} ({level['rows_per_passage']:.2f})", level["level"],
                     level["index"], build, f"{level['p50_ms']:.2f}", f"{level['p99_ms']:.2f}",
                     f"{level['recall_at_1']:.3f}", _mb(level["faiss_bytes"] / 1e6),
                     f"{level['bytes_per_passage']:,.0f}"])
        if "faiss_p50_ms" in level:
            notes.append(f"At {level['passages']:,} passages, FaqIndex's search is FAISS (p50 "
                         f"{level['faiss_p50_ms']:.2f} ms, p99 {level['faiss_p99_ms']:.2f} ms for its "
                         f"{64} candidates) plus grouping rows by passage and article; besides the FAISS index it "
                         f"keeps the row vectors, per-passage sums and centroids, owners and weights: "
                         f"{level['index_arrays_bytes'] / 1e6:,.0f} MB more, "
                         f"{level['all_bytes_per_passage']:,.0f} bytes per passage in all (process RSS grew "
                         f"{level['rss_growth_bytes'] / 1e6:,.0f} MB while it was built).")
        if "train_s" in level:
            notes.append(f"Building {level['passages']:,} passages grew the process by "
                         f"{level['rss_growth_bytes'] / 1e9:.2f} GB for {level['faiss_bytes'] / 1e9:.2f} GB of index: "
                         "FAISS adds rows in blocks and each inverted list's storage grows geometrically, so "
                         "some of it is spare capacity (`build_ivf` adds the same way, and also needs the whole "
                         "row matrix beside the index while it builds).")
        if "same_top10_as_build_ivf" in level:
            notes.append(f"The chunked build of the same {level['passages']:,} passages returned the same top 10 "
                         f"rows as the product's `build_ivf` (inside FaqIndex) for "
                         f"{100 * level['same_top10_as_build_ivf']:.0f} % of the queries.")
        if "load_average" in level:
            notes.append(f"Load average after the {level['passages']:,}-passage build: {level['load_average']}.")
    return ("### Search one query at a time, 100k and 1M passages\n\n"
            + table(["passages", "rows (per passage)", "searched through", "index", "build s", "p50 ms", "p99 ms",
                     "recall@1 vs exact", "FAISS index MB", "FAISS bytes per passage"], rows)
            + f"\nRows per passage drawn from {part['rows_source']} (mean {part['rows_per_passage_real']:.2f}: "
              "heading path, heading path with text, one per sentence). Vectors synthetic (normalised Gaussian, "
              "384-d; no cluster structure, the worst case for IVF: recall on real embeddings is in the FAQ "
              "section); queries are stored rows plus noise; recall@1 is the top passage against exact search "
              "over every row, on 200 queries. Builds on every core, searches on one thread. "
              + " ".join(notes) + "\n")


def _process_rows(run: dict) -> list[list]:
    ready = {p["pid"]: p for p in run["ready"]}
    out = []
    for p in run["after_warmup"]:
        before = ready.get(p["pid"], {})
        out.append([run["kb"], run["workers"], p["role"], _mb(before.get("rss_mb", 0)), _mb(p["rss_mb"]),
                    _mb(p["pss_mb"]), _mb(p["uss_mb"]), _mb(p["shared_mb"])])
    total = run["after_warmup"]
    out.append([run["kb"], run["workers"], "**all processes**", _mb(sum(p.get("rss_mb", 0) for p in run["ready"])),
                _mb(sum(p["rss_mb"] for p in total)), f"**{_mb(sum(p['pss_mb'] for p in total))}**",
                _mb(sum(p["uss_mb"] for p in total)), "–"])
    return out


def _worker(run: dict) -> dict:
    return next(p for p in run["after_warmup"] if p["role"].startswith("worker"))


def memory_section(part: dict) -> str:
    runs = {(r["kb"], r["workers"]): r for r in part["runs"]}
    rows = [row for run in part["runs"] for row in _process_rows(run)]
    passages = {name: r["passages"] for name, r in part["rows"].items()}
    kinds = {name: r["rows"] for name, r in part["rows"].items()}
    demo, big = _worker(runs[("demo", 1)]), _worker(runs[("helpcenter", 1)])
    extra = passages["helpcenter"] - passages["demo"]
    per_passage = {k: (big[k] - demo[k]) * 2**20 / extra for k in ("rss_mb", "uss_mb")}  # bytes
    manifest = part["helpcenter_manifest"]
    text = ("### Memory per worker of `frontdesk serve`\n\n"
            + table(["knowledge base", "workers", "process", "RSS MiB at ready", "RSS MiB", "PSS MiB", "USS MiB",
                     "shared MiB"], rows)
            + f"\nModel `{part['model']}` (the demo intent model: 4 layers, int8 ONNX). Figures after a warm-up of "
              f"{runs[('demo', 1)]['warmup']['sent']} `POST /chat` messages unless headed \"at ready\"; from "
              "/proc/PID/smaps_rollup (USS: private pages; PSS: shared pages divided among the processes mapping "
              "them, so the PSS of all processes is what the server really uses; MiB = 2^20 bytes). Knowledge bases: "
              "**demo** "
              f"(knowledge/demo: {part['rows']['demo']['faq_entries']} FAQ entries and {passages['demo']} passages, "
              f"{kinds['demo']:,} index rows) and "
              f"**helpcenter** ({manifest['articles']:,} articles: Mastodon's {manifest['mastodon_articles']} and "
              f"{manifest['stackfaq_articles']} made from StackFAQ's {manifest['stackfaq_threads']} threads, "
              f"about {manifest['copies_per_thread']} articles per thread, titled and headed with its question and "
              f"rephrasings, one section per answer, bench/scale/helpcenter.py; {passages['helpcenter']:,} "
              f"passages, {kinds['helpcenter']:,} index rows). Warm-up replies: "
              + "; ".join(f"{r['kb']} {r['workers']}w {r['warmup']['statuses']}" for r in part["runs"])
              + ". Load average after each: "
              + "; ".join(f"{r['kb']} {r['workers']}w {r['load_average']}" for r in part["runs"]) + ".\n\n"
              f"Per extra passage (one worker, help center minus demo, over {extra:,} passages): "
              f"{per_passage['rss_mb'] / 1000:.1f} KB RSS, {per_passage['uss_mb'] / 1000:.1f} KB USS "
              f"({(big['uss_mb'] - demo['uss_mb']) * 2**20 / (kinds['helpcenter'] - kinds['demo']):,.0f} bytes USS "
              f"per extra index row).")
    redis = part.get("redis")
    if redis:
        text += (f" Redis, for comparison (`python -m bench.memory`, {redis['conversations']} conversations): "
                 f"{redis['used_memory_delta_per_conversation']:,} bytes of `used_memory` per conversation, so "
                 f"one help-center worker's USS ({_mb(big['uss_mb'])} MiB) is the Redis memory of about "
                 f"{big['uss_mb'] * 2**20 / redis['used_memory_delta_per_conversation']:,.0f} conversations.")
    return text + "\n\n" + steps_section(part) + "\n" + mappings_section(runs)


def steps_section(part: dict) -> str:
    probes = part["probes"]
    names = list(probes)
    steps = [s["step"] for s in probes[names[0]]["steps"]]
    rows = []
    for i, step in enumerate(steps):
        cells = [step]
        for name in names:
            now, before = probes[name]["steps"][i], probes[name]["steps"][i - 1] if i else None
            delta = f" (+{now['rss_mb'] - before['rss_mb']:.0f})" if before else ""
            cells.append(f"{now['rss_mb']:.0f}{delta}")
        rows.append(cells)
    return ("What a worker's memory is made of: a fresh process loading a worker's parts one at a time "
            "(`python -m bench.scale.steps`, run by the memory part on each knowledge base's warm home), its RSS "
            "after each:\n\n" + table(["step", *(f"{n} RSS MiB (+ step)" for n in names)], rows))


def mappings_section(runs: dict) -> str:
    rows = []
    for key in (("demo", 2), ("helpcenter", 2)):
        if key not in runs:
            continue
        worker = _worker(runs[key])
        for name, m in worker["breakdown"].items():
            if m["rss_mb"] >= 1:
                rows.append([f"{key[0]}, {key[1]} workers", name, _mb(m["rss_mb"]), _mb(m["pss_mb"]),
                             _mb(m["uss_mb"]), _mb(m["shared_mb"])])
    return ("\nOne worker's mappings after the warm-up (/proc/PID/smaps, grouped), with two workers running:\n\n"
            + table(["server", "memory", "RSS MiB", "PSS MiB", "private MiB", "shared MiB"], rows))


def coldstart_section(part: dict) -> str:
    rows, runs = [], []
    for name, kinds in part.items():
        if name.startswith("_"):
            continue
        if kinds.get("run"):
            runs.append(f"{name}: `{kinds['run']['command']}`, {kinds['run']['date']}")
        for kind, stats in ((k, v) for k, v in kinds.items() if k != "run"):
            starts = stats["starts"]
            cpu = [s["cpu_s"] for s in starts if "cpu_s" in s]
            rows.append([name, kind, len(starts), f"{stats['median_s']:.1f}",
                         f"{stats['min_s']:.1f}–{stats['max_s']:.1f}",
                         f"{statistics.median(cpu):.1f}" if cpu else "–",
                         _mb(statistics.median(s["peak_rss_mb"] for s in starts)),
                         "; ".join(str(s["load_average"][0]) for s in starts)])
    return ("### Cold start: spawn to `/readyz` 200, one worker\n\n"
            + table(["knowledge base", "start", "runs", "median s", "range s", "CPU s (median)",
                     "peak RSS MiB (median)", "1-min load average at ready"], rows)
            + "\nCold: an emptied FRONTDESK_HOME, so every passage, sentence and generated calibration question is "
              "embedded and the embedded Redis starts empty; warm: a second start on that home (embedding cache "
              "present). The operating system's file cache was not emptied. CPU s: the serve process's user and "
              "system CPU seconds at ready, all threads (less moved than wall time by other load on a shared "
              "machine). Peak RSS: its VmHWM at ready." + (" Runs: " + "; ".join(runs) + "." if runs else "") + "\n")


def render(results: dict) -> str:
    parts = [TITLE, "", runs_summary(results), f"Machine: {machine()}", ""]
    if "search" in results:
        parts.append(search_section(results["search"]))
    if "memory" in results:
        parts.append(memory_section(results["memory"]))
    if "coldstart" in results:
        parts.append(coldstart_section(results["coldstart"]))
    return "\n".join(parts)
