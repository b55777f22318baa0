"""Distilled students against their teachers: accuracy on the three public sets, speed, size (bench.nlu parts).

    python -m bench.nlu --parts distill-banking,distill-clinc,distill-airline   # students, accuracy
    python -m bench.nlu --parts distill-speed                                   # speed and size, idle machine

Each `distill-<task>` part distils that task's teacher (the model the `banking` / `clinc` / `airline` part
trained, under bench/results) into students of 4, 3 and 2 layers with `nlu.distill.distill` (what
`frontdesk distill` runs), exports each to int8 ONNX with `nlu.export.export_onnx` (`frontdesk export
--quantize int8`), and scores teacher and students, PyTorch and int8, through `Predictor.predict` on the
same held-out split as the teacher's part. `distill-speed` measures texts/s at batch 1 and 32 for the
BANKING77 teacher and students in both backends, with the naive design (a Hugging Face `pipeline` over
the same-sized 6-layer model) in the same run, in rounds that take every model in turn.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench._setup import ROOT, WORK
from bench.report import table

LAYERS = (4, 3, 2)
PRUNED = ((4, 768),)  # (layers, feed-forward width) of the pruned students: `frontdesk distill --ffn-width`
TASKS = ("banking", "clinc", "airline")
TEACHER_DIRS = {"banking": "banking77", "clinc": "clinc150", "airline": "airline"}


def _data(task: str):
    """(intent train, sentiment train, test rows, which task the test scores) as the teacher's part used them."""
    from bench.nlu import datasets as b
    from nlu.data import demo_intents_path, read_labelled_csv

    demo_sentiment = read_labelled_csv(ROOT / "nlu" / "demo" / "sentiment.csv", "sentiment")
    if task == "banking":
        train, test = b.banking_split()
        return train, demo_sentiment, test
    if task == "clinc":
        train, test = b.clinc_split()
        return train, demo_sentiment, test
    train, test = b.airline_split()
    return read_labelled_csv(demo_intents_path(), "intent"), train, test


def _score(task: str, path: Path, backend: str, test) -> dict:
    from bench.nlu import datasets as b
    from nlu.engine import load_predictor

    predictor = load_predictor(path, "cpu", backend=backend)
    texts = [e.text for e in test]
    results = []
    for i in range(0, len(texts), 32):
        results += predictor.predict(texts[i : i + 32])
    if task == "banking":  # no out-of-scope rows: the top intent, as the banking part scores it
        return b.intent_metrics(test, [r.top_intents[0]["intent"] for r in results])
    if task == "clinc":
        return b.intent_metrics(test, [r.intent for r in results])
    return b.sentiment_metrics(test, [r.sentiment for r in results])


def _size_mb(path: Path, backend: str) -> float:
    files = [path / "model.onnx"] if backend == "onnx" else [path / "model.safetensors", path / "heads.safetensors"]
    return sum(f.stat().st_size for f in files) / 1e6


def student_dir(task: str, layers: int, int8: bool = False, ffn_width: int | None = None) -> Path:
    return WORK / f"{TEACHER_DIRS[task]}-student-{layers}l{f'-ffn{ffn_width}' if ffn_width else ''}" \
                  f"{'-int8' if int8 else ''}"


def student_name(layers: int, ffn_width: int | None = None) -> str:
    return f"student, {layers} layers" + (f", feed-forward {ffn_width}" if ffn_width else "")


def run_task(task: str, config, shapes=None) -> dict:
    """Distil, export and score one task's teacher and its students; `config` is the DistillConfig.
    `shapes`: (layers, feed-forward width) students instead of the layer-only ones, without the teacher rows."""
    import dataclasses

    from nlu.distill import distill
    from nlu.export import export_onnx
    from nlu.progress import RichProgress

    teacher = WORK / TEACHER_DIRS[task]
    if not (teacher / "model.safetensors").exists():
        raise SystemExit(f"distill-{task} needs the {task} part's model at {teacher}: run --parts {task} first")
    intents, sentiments, test = _data(task)
    rows: dict[str, dict] = {}
    models = [] if shapes else [("teacher (6 layers)", teacher, None)]
    for layers, width in shapes or [(n, None) for n in LAYERS]:
        out = student_dir(task, layers, ffn_width=width)
        started = time.perf_counter()
        result = distill(teacher, out, intents, sentiments, dataclasses.replace(config, layers=layers, ffn_width=width),
                         progress=RichProgress(description=f"{task} {student_name(layers, width)}"))
        models.append((student_name(layers, width), out, {"distill_seconds": time.perf_counter() - started,
                                                          "best_epoch": result.metrics["best_epoch"]}))
    for name, path, extra in models:
        int8 = path.parent / f"{path.name}-int8"  # student_dir(..., int8=True) for a student
        export_onnx(path, int8, "int8")
        for backend, where in (("PyTorch", path), ("int8 ONNX", int8)):
            scores = _score(task, where, "torch" if backend == "PyTorch" else "onnx", test)
            rows[f"{name} · {backend}"] = {**scores, **(extra or {}),
                                           "size_mb": _size_mb(where, "torch" if backend == "PyTorch" else "onnx")}
            print(task, name, backend, rows[f"{name} · {backend}"], flush=True)
    return {"rows": rows, "test_rows": len(test), "config": config.to_dict()}


def run_pruned(config) -> dict:
    """The pruned students (`PRUNED`) of all three teachers, scored like the others (part `distill-pruned`)."""
    return {task: run_task(task, config, shapes=PRUNED) for task in TASKS}


def run_rescore() -> dict:
    """Every int8 model of the table scored again through today's serving backend (part `distill-rescore`):
    dynamic int8 quantization scales each pass's activations by that pass's range, so which texts share a pass
    (the backend's pass size) moves a few answers. The PyTorch rows do not depend on it."""
    out: dict[str, dict] = {}
    for task in TASKS:
        _, _, test = _data(task)
        models = {"teacher (6 layers)": WORK / f"{TEACHER_DIRS[task]}-int8"}
        models.update({student_name(n): student_dir(task, n, True) for n in LAYERS})
        models.update({student_name(*shape): student_dir(task, shape[0], True, shape[1]) for shape in PRUNED})
        out[task] = {f"{name} · int8 ONNX": {**_score(task, path, "onnx", test), "size_mb": _size_mb(path, "onnx")}
                     for name, path in models.items() if (path / "model.onnx").exists()}
        print(task, out[task], flush=True)
    return out


def run_direct(config, layers: int = 3) -> dict:
    """The alternative to distilling: a BANKING77 model of `layers` layers trained directly on the labels
    (`frontdesk train --layers`), with the teacher's recipe (`config`), exported and scored the same way."""
    import dataclasses

    from nlu.export import export_onnx
    from nlu.fit import fit
    from nlu.progress import RichProgress

    intents, sentiments, test = _data("banking")
    out = WORK / f"banking77-direct-{layers}l"
    started = time.perf_counter()
    fit(intents, sentiments, out, dataclasses.replace(config, layers=layers),
        progress=RichProgress(description=f"banking direct {layers}"))
    seconds = time.perf_counter() - started
    export_onnx(out, out.parent / f"{out.name}-int8", "int8")
    rows = {}
    for backend, where in (("PyTorch", out), ("int8 ONNX", out.parent / f"{out.name}-int8")):
        kind = "torch" if backend == "PyTorch" else "onnx"
        rows[f"trained directly, {layers} layers · {backend}"] = {
            **_score("banking", where, kind, test), "train_seconds": seconds, "size_mb": _size_mb(where, kind)}
    return {"rows": rows, "config": config.to_dict()}


def _naive_rate(texts: list[str], batch: int, pipe) -> float:
    started = time.perf_counter()
    if batch == 1:
        for text in texts:
            pipe(text)
    else:
        pipe(texts, batch_size=batch)
    return len(texts) / (time.perf_counter() - started)


def run_speed(rounds: int = 5) -> dict:
    """texts/s at batch 1 (64 texts one at a time) and 32 (320 texts), best of `rounds` rounds per model."""
    from bench.nlu import datasets as b
    from bench.serve.baselines import make_pipeline
    from nlu.engine import load_predictor

    texts = [e.text for e in b.banking_split()[1]]
    teacher = WORK / TEACHER_DIRS["banking"]
    models = {"teacher (6 layers)": (teacher, WORK / f"{teacher.name}-int8")}
    for layers in LAYERS:
        models[student_name(layers)] = (student_dir("banking", layers), student_dir("banking", layers, True))
    for layers, width in PRUNED:
        if (student_dir("banking", layers, True, width) / "labels.json").exists():  # part distill-pruned has run
            models[student_name(layers, width)] = (student_dir("banking", layers, ffn_width=width),
                                                   student_dir("banking", layers, True, width))
    predictors = {}
    for name, (torch_dir, int8_dir) in models.items():
        for backend, path in (("PyTorch", torch_dir), ("int8 ONNX", int8_dir)):
            if not (path / "labels.json").exists():
                raise SystemExit(f"{path} is missing: run --parts distill-banking first")
            predictors[f"{name} · {backend}"] = (load_predictor(path, "cpu", backend="torch" if backend == "PyTorch"
                                                                else "onnx"), _size_mb(path, "torch" if backend ==
                                                                                        "PyTorch" else "onnx"))
    pipe = make_pipeline("cpu")
    best: dict[str, dict[str, float]] = {}
    for round_ in range(rounds):
        for name, (predictor, _) in predictors.items():
            predictor.predict(texts[:32])
            rates = best.setdefault(name, {})
            for batch, sample in ((1, texts[:64]), (32, texts[:320])):
                started = time.perf_counter()
                for i in range(0, len(sample), batch):
                    predictor.predict(sample[i : i + batch])
                rates[f"batch{batch}"] = max(rates.get(f"batch{batch}", 0.0),
                                             len(sample) / (time.perf_counter() - started))
        naive = best.setdefault("naive: HF pipeline, 6 layers", {})
        for batch, sample in ((1, texts[:64]), (32, texts[:320])):
            naive[f"batch{batch}"] = max(naive.get(f"batch{batch}", 0.0), _naive_rate(sample, batch, pipe))
        print(f"round {round_ + 1}", best, flush=True)
    sizes = {name: size for name, (_, size) in predictors.items()}
    return {"rates": best, "size_mb": sizes, "rounds": rounds}


def render(results: dict) -> list[str]:
    """The distillation section of the nlu benchmark page (empty when no distill part has run)."""
    parts = {task: results.get(f"distill-{task}") for task in TASKS}
    pruned = results.get("distill-pruned", {})
    speed = results.get("distill-speed", {})
    if not any(parts.values()) and not speed:
        return []
    models = ["teacher (6 layers)", *(student_name(n) for n in LAYERS), *(student_name(*shape) for shape in PRUNED)]
    names = [f"{m} · {b}" for m in models for b in ("PyTorch", "int8 ONNX")]

    rescored = results.get("distill-rescore", {})

    def cell(task: str, name: str, key: str):
        rows = {**(parts.get(task) or {}).get("rows", {}), **(pruned.get(task) or {}).get("rows", {}),
                **rescored.get(task, {})}
        return (rows.get(name) or {}).get(key, "-")

    rates = speed.get("rates", {})
    direct = results.get("distill-direct", {}).get("rows", {})
    rows = [[name, cell("banking", name, "accuracy"), cell("clinc", name, "in_scope_accuracy"),
             cell("clinc", name, "oos_recall"), cell("airline", name, "macro_f1"),
             rates.get(name, {}).get("batch1", "-"), rates.get(name, {}).get("batch32", "-"),
             speed.get("size_mb", {}).get(name, cell("banking", name, "size_mb"))] for name in names]
    rows += [[name, r["accuracy"], "-", "-", "-", "-", "-", r["size_mb"]] for name, r in direct.items()]
    naive = rates.get("naive: HF pipeline, 6 layers")
    if naive:
        rows.append(["naive: HF `pipeline`, 6 layers, untrained head", "-", "-", "-", "-", naive["batch1"],
                     naive["batch32"], "-"])
    config = next((p["config"] for p in parts.values() if p), {})
    epochs = ", ".join(f"{p['config']['epochs']} ({name})" for name, p in
                       zip(("BANKING77", "CLINC150", "airline"), parts.values(), strict=True) if p)
    lines = ["### Distilled students (`frontdesk distill`) against their teachers", "",
             table(["model", "BANKING77 accuracy", "CLINC150 in-scope accuracy", "CLINC150 oos recall",
                    "airline macro-F1", "texts/s, batch 1", "texts/s, batch 32", "size MB"], rows)]
    lines.append(
        "Teachers: the models of the `banking`, `clinc` and `airline` parts above. Each student keeps the first, "
        "the last and evenly spread layers of its teacher and its heads, and learns the teacher's intent and "
        "sentiment distributions (temperature "
        f"{config.get('temperature', '-')}), its pooled embedding (cosine) and the gold labels (weight "
        f"{config.get('gold_weight', '-')}) on the teacher's training split, for up to {epochs} epochs "
        f"(augmented copies: {config.get('augment_copies', '-')}), then is calibrated on the teacher's dev "
        "split (out-of-scope thresholds, neighbour bank, sentiment bias). Same test rows as the parts above; "
        "BANKING77 scores the top intent, CLINC150 the decision with the out-of-scope rule. int8 = `frontdesk "
        "export --quantize int8`"
        + (f", scored again through the serving backend of {rescored['_run']['date']} (part `distill-rescore`: "
           "dynamic quantization scales each pass by its own range, so the pass size moves a few answers)"
           if rescored.get("_run") else "")
        + ". Speed: BANKING77 models on its dev texts through `Predictor.predict`, one at a time over 64 texts "
        "and in batches of 32 over 320, best of "
        f"{speed.get('rounds', '-')} rounds taking every model in turn; the naive pipeline in the same rounds. "
        "Size: encoder and heads (PyTorch) or model.onnx (int8). \"Feed-forward 768\": `--ffn-width 768`, every "
        "layer's feed-forward block pruned from 1536 to the 768 neurons that matter most on the distillation texts "
        "before training (part `distill-pruned`). \"Trained directly\": `frontdesk train --layers` "
        f"with the teacher's recipe for up to {results.get('distill-direct', {}).get('config', {}).get('epochs', '-')} "
        "epochs (part `distill-direct`), no teacher.\n")
    return lines
