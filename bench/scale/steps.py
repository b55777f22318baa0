"""What a worker's memory is made of: one fresh process loads a worker's parts one at a time, reading its own memory
after each (bench.scale's memory part runs it; prints one JSON object).

    python -m bench.scale.steps MODEL_DIR KB_FOLDER FRONTDESK_HOME

The parts are the ones a `frontdesk serve` worker loads (adapters.runtime.components): the model libraries (first,
so each is counted once whichever project module imports it), the web app's own modules, the intent model
(`load_engine`, the ONNX graph on a CPU), the retrieval encoder (`Embedder`), and the knowledge base built from
the home's embedding cache (`KnowledgeBase.reload`, with the intent model for calibration). The home's cache must
be warm (a server started on it once), or the knowledge-base step embeds everything.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench.scale.procmem import breakdown, rollup


def main() -> None:
    model, kb_folder, home = (Path(a) for a in sys.argv[1:4])
    steps: list[dict] = []

    def record(name: str, started: float) -> None:
        steps.append({"step": name, "seconds": round(time.perf_counter() - started, 2),
                      **{k: round(v, 1) for k, v in rollup(os.getpid()).items()}})

    started = time.perf_counter()
    record("Python and the benchmark's own imports", started)
    started = time.perf_counter()
    import torch  # noqa: F401 - each import measured on its own

    record("torch imported", started)
    started = time.perf_counter()
    import sentence_transformers  # noqa: F401 - transformers with it

    record("transformers and sentence-transformers imported", started)
    started = time.perf_counter()
    import faiss  # noqa: F401
    import onnxruntime  # noqa: F401

    record("onnxruntime and faiss imported", started)
    started = time.perf_counter()
    import adapters.http.app  # noqa: F401 - after the libraries, so this step is the app's own modules

    record("web app modules on top (adapters.http.app: FastAPI, Redis client, the bot, knowledge)", started)
    from nlu.engine import load_engine

    started = time.perf_counter()
    engine = load_engine(model, "cpu", backend="auto")
    engine.predict(["where is my order?"])
    record("intent model loaded and run once (load_engine: its ONNX session, and the bundle: PyTorch model, "
           "tokenizer, heads)", started)
    from knowledge.embedder import Embedder

    started = time.perf_counter()
    embedder = Embedder()
    embedder.encode(["where is my order?"])
    record("retrieval encoder loaded and run once (Embedder: MiniLM-L6, torch)", started)
    from knowledge.service import KnowledgeBase

    started = time.perf_counter()
    kb = KnowledgeBase(kb_folder, embedder=embedder, cache_dir=home / "kb-cache", classify=engine.predict)
    result = kb.reload()
    record(f"knowledge base built from the warm cache ({result.embedded_texts} texts embedded)", started)
    started = time.perf_counter()
    questions = [f"how do I change setting number {i} of my account?" for i in range(50)]
    for question in questions:
        kb.answer(question, None)
    engine.predict(questions)
    record("50 questions searched and classified", started)
    final = breakdown(os.getpid())
    kb.close()
    engine.close()
    print(json.dumps({"steps": steps, "breakdown": final, "index": kb.index.version.index_type,
                      "summary": kb.index.summary}))


if __name__ == "__main__":
    main()
