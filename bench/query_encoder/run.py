"""Query encoders against the retrieval encoder they stand in for: speed per question and the same answers.

    python -m bench.query_encoder --encoder bench/results/query-encoders/q3 --encoder bench/results/query-encoders/q6
    python -m bench.query_encoder --make 3,6      # first make them with `frontdesk kb encoder` on the demo

Speed: the demo's customer questions (bench/dialogue/cases) embedded one at a time and in passes of 8, in this
process, by the retrieval encoder as the knowledge base serves it (sentence-transformers, fp32) and by each query
encoder (onnxruntime, int8). Answers: the demo knowledge base built once per encoder, retrieval alone and the
answer rule calibrated with each (as a server builds it), on the same questions: how often the best hit and the
decision (answer, suggest, decline, with its entry) are the same as the retrieval encoder's, and each one's
accuracy on the questions' labels. The questions are held out: the encoders learn from the knowledge base's own
texts and the demo's intent examples, never from bench/dialogue/cases.
"""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench._setup import ROOT, WORK, argument_parser
from bench.report import run_stamp, table, write_section

CASES = ROOT / "bench" / "dialogue" / "cases"
DEMO = ROOT / "knowledge" / "demo"
MADE = WORK / "query-encoders"
RESULTS = WORK / "query-encoder.json"


def questions() -> list[tuple[str, str]]:
    """(text, expected id or "" for a question the demo does not cover)."""
    rows = []
    for path in sorted(CASES.glob("demo_*.csv")):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append((row["text"], row.get("faq_id") or row.get("id") or ""))
    return rows


def make(layers: int, epochs: int) -> Path:
    out = MADE / f"q{layers}"
    texts = MADE / "intent-texts.txt"
    MADE.mkdir(parents=True, exist_ok=True)
    with open(ROOT / "nlu" / "demo" / "intents.csv", newline="") as handle:
        texts.write_text("\n".join(row["text"] for row in csv.DictReader(handle)))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "adapters.cli", "kb", "encoder", "--kb", str(DEMO), "--texts", str(texts),
                    "--out", str(out), "--layers", str(layers), "--epochs", str(epochs)], cwd=ROOT, check=True)
    print(f"made {out} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out


def speed(encode, texts: list[str], repeats: int = 3) -> dict:
    """ms per question one at a time (p50, p99) and per question in passes of 8, the best of `repeats`."""
    single = []
    for _ in range(repeats):
        for text in texts:
            started = time.perf_counter()
            encode([text])
            single.append((time.perf_counter() - started) * 1000)
    batched = []
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(texts), 8):
            encode(texts[start : start + 8])
        batched.append((time.perf_counter() - started) * 1000 / len(texts))
    single.sort()
    return {"single_p50_ms": statistics.median(single), "single_p99_ms": single[int(0.99 * (len(single) - 1))],
            "per_question_in_8s_ms": min(batched)}


def decisions(kb, texts: list[str]) -> list[tuple[str, str, str]]:
    """(best hit's id, decision kind, decided id) per question."""
    out = []
    for text in texts:
        decision = kb.answer(text)
        best = decision.best.id if decision.best else ""
        out.append((best, str(decision.kind), best if decision.kind == "answer" else ""))
    return out


def correct(decided: list[tuple[str, str, str]], expected: list[str]) -> float:
    """Right answers or right declines."""
    hits = 0
    for (_, kind, entry), want in zip(decided, expected, strict=True):
        hits += (kind == "answer" and entry == want) if want else kind != "answer"
    return hits / len(expected)


def run(encoders: list[Path]) -> dict:
    from knowledge.embedder import Embedder
    from knowledge.query_encoder import QueryEncoderError, load_query_encoder
    from knowledge.service import KnowledgeBase

    asked = questions()
    texts, expected = [t for t, _ in asked], [e for _, e in asked]
    embedder = Embedder()
    rows: dict[str, dict] = {}
    refused: dict[str, str] = {}
    plain = KnowledgeBase(DEMO, embedder=embedder, use_intents=False)
    assert plain.reload().ok
    reference = decisions(plain, texts)
    reference_vectors = embedder.encode(texts)
    rows["retrieval encoder (fp32, sentence-transformers)"] = {
        **speed(embedder.encode, texts), "layers": 6, "mean_cosine": 1.0, "same_best_hit": 1.0,
        "same_decision": 1.0, "right": correct(reference, expected)}
    for folder in encoders:
        try:
            encoder = load_query_encoder(folder, embedder)
        except QueryEncoderError as exc:  # what a server would refuse to serve: reported, not measured
            refused[folder.name] = str(exc)
            continue
        kb = KnowledgeBase(DEMO, embedder=embedder, use_intents=False, query_encoder=encoder)
        assert kb.reload().ok
        mine = decisions(kb, texts)
        cosine = np.sum(encoder.encode(texts) * reference_vectors, axis=1)
        rows[f"query encoder {folder.name} (int8 ONNX)"] = {
            **speed(encoder.encode, texts), "layers": encoder.info.layers, "mean_cosine": float(cosine.mean()),
            "min_cosine": float(cosine.min()),
            "same_best_hit": float(np.mean([a[0] == b[0] for a, b in zip(mine, reference, strict=True)])),
            "same_decision": float(np.mean([a[1:] == b[1:] for a, b in zip(mine, reference, strict=True)])),
            "right": correct(mine, expected), "made_with": encoder.info.agreement}
        kb.close()
    plain.close()
    return {"questions": len(texts), "rows": rows, "refused": refused}


def render(results: dict) -> str:
    lines = ["## Query encoders (`python -m bench.query_encoder`)", "", run_stamp(), table(
        ["encoder of customers' questions", "layers", "ms one question (p50)", "p99", "ms a question in 8s",
         "mean cosine with the retrieval encoder", "same best hit", "same decision", "right"],
        [[name, r["layers"], r["single_p50_ms"], r["single_p99_ms"], r["per_question_in_8s_ms"], r["mean_cosine"],
          r["same_best_hit"], r["same_decision"], r["right"]] for name, r in results["rows"].items()]), ""]
    lines.append(
        f"{results['questions']} demo customer questions (bench/dialogue/cases: covered, article, near-miss and "
        "uncovered), never learned from. Decisions are the demo knowledge base's answer rule, retrieval alone, "
        "calibrated with each encoder as a server calibrates it; \"right\" is a right answer for a covered "
        "question and no answer for the others. Times are in-process, one thread of onnxruntime per pass.")
    lines += [f"\nRefused at load ({name}): {why}" for name, why in results.get("refused", {}).items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--encoder", type=Path, action="append", default=[], help="a query-encoder directory")
    parser.add_argument("--make", default="", help="layers of encoders to make first, comma-separated")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    encoders = [*args.encoder, *(make(int(n), args.epochs) for n in args.make.split(",") if n.strip())]
    results = run(encoders)
    print(json.dumps(results, indent=2))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if not args.no_report:
        write_section("query-encoder", render(results))


if __name__ == "__main__":
    main()
