"""NLU benchmark: BANKING77, CLINC150 (with out-of-scope), airline sentiment, baselines, speed.

    python -m bench.nlu                       # everything (about an hour on 2 CPU cores)
    python -m bench.nlu --parts banking,speed # some parts; the others keep their last results

Reads ../shared/data (never copied into the repo) and writes the `nlu` section of
docs/BENCHMARKS.md. Results of each part are kept in docs/benchmarks/nlu.json so a
partial re-run still renders the whole table.
"""

from __future__ import annotations

import json
import random
import time

from bench._setup import REPORT_DATA, ROOT, WORK, argument_parser, require_data
from bench.nlu import distill as nlu_distill
from bench.nlu.datasets import SEED, airline_split, banking_split, clinc_split, intent_metrics, sentiment_metrics
from bench.report import part_stamp, run_stamp, runs_summary, table, write_section
from nlu.augment import noisy_variant
from nlu.data import Example, demo_intents_path, read_labelled_csv
from nlu.distill import DistillConfig
from nlu.fit import fit
from nlu.predictor import Predictor, TorchBackend
from nlu.progress import RichProgress
from nlu.train import TrainConfig, default_base_model

RESULTS = REPORT_DATA / "nlu.json"
PARTS = ("baselines", "banking", "clinc", "airline", "airline-ensemble", "augment", "speed", "ensemble",
         "distill-banking", "distill-clinc", "distill-airline", "distill-pruned", "distill-rescore", "distill-direct",
         "distill-speed")


def run_baselines() -> dict:
    from sentence_transformers import SentenceTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    encoder = SentenceTransformer(default_base_model(), device="cpu")
    out: dict = {}
    for name, (train, test), kind in (
        ("banking77", banking_split(), "intent"),
        ("clinc150", clinc_split(), "intent"),
        ("airline", airline_split(), "sentiment"),
    ):
        x_train, y_train = [e.text for e in train], [e.label for e in train]
        x_test = [e.text for e in test]
        metric = intent_metrics if kind == "intent" else sentiment_metrics
        tfidf = make_pipeline(
            make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                       TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
            LinearSVC(C=0.5),
        )
        tfidf.fit(x_train, y_train)
        out[f"{name}/tfidf_svm"] = metric(test, list(tfidf.predict(x_test)))
        e_train = encoder.encode(x_train, batch_size=128, normalize_embeddings=True)
        e_test = encoder.encode(x_test, batch_size=128, normalize_embeddings=True)
        logreg = LogisticRegression(C=10.0, max_iter=2000)
        logreg.fit(e_train, y_train)
        out[f"{name}/frozen_minilm_logreg"] = metric(test, list(logreg.predict(e_test)))
        print(name, {k: v for k, v in out.items() if k.startswith(name)}, flush=True)
    return out


# ---------------------------------------------------------------- fine-tuning
def finetune(name: str, intents: list[Example], sentiments: list[Example], config: TrainConfig):
    started = time.perf_counter()
    result = fit(intents, sentiments, WORK / name, config, progress=RichProgress(description=name))
    return result, time.perf_counter() - started


def run_banking(config: TrainConfig) -> dict:
    train, test = banking_split()
    demo_sentiment = read_labelled_csv(ROOT / "nlu" / "demo" / "sentiment.csv", "sentiment")
    result, seconds = finetune("banking77", train, demo_sentiment, config)
    predictor = Predictor(result.bundle, TorchBackend(result.bundle, "cpu"))
    results = predictor.predict([e.text for e in test])
    # BANKING77 has no out-of-scope rows: score the classifier's own decision (top intent).
    top = [r.top_intents[0]["intent"] for r in results]
    gated = [r.intent for r in results]
    return {
        **intent_metrics(test, top),
        "accuracy_with_oos_gate": intent_metrics(test, gated)["accuracy"],
        "train_seconds": seconds,
        "train_rows": len(train),
        "test_rows": len(test),
        "best_epoch": result.metrics["best_epoch"],
    }


def run_clinc(config: TrainConfig) -> dict:
    train, test = clinc_split()
    demo_sentiment = read_labelled_csv(ROOT / "nlu" / "demo" / "sentiment.csv", "sentiment")
    result, seconds = finetune("clinc150", train, demo_sentiment, config)
    predictor = Predictor(result.bundle, TorchBackend(result.bundle, "cpu"))
    results = predictor.predict([e.text for e in test])
    return {**intent_metrics(test, [r.intent for r in results]), "train_seconds": seconds,
            "thresholds": result.bundle.thresholds.to_dict()}


def run_airline(config: TrainConfig) -> dict:
    train, test = airline_split()
    demo_intents = read_labelled_csv(demo_intents_path(), "intent")
    result, seconds = finetune("airline", demo_intents, train, config)
    predictor = Predictor(result.bundle, TorchBackend(result.bundle, "cpu"))
    results = predictor.predict([e.text for e in test])
    return {**sentiment_metrics(test, [r.sentiment for r in results]), "train_seconds": seconds}


def run_airline_ensemble(config: TrainConfig) -> dict:
    """The airline model of the `airline` part averaged with a second seed (`frontdesk ensemble`)."""
    from nlu.engine import load_predictor
    from nlu.ensemble import write_ensemble

    first = WORK / "airline"
    if not (first / "model.safetensors").exists():
        raise SystemExit("airline-ensemble needs the airline part's model: run --parts airline first")
    train, test = airline_split()
    demo_intents = read_labelled_csv(demo_intents_path(), "intent")
    second_config = TrainConfig(**{**config.to_dict(), "seed": config.seed + 1})
    _, seconds = finetune("airline-seed2", demo_intents, train, second_config)
    write_ensemble([first, WORK / "airline-seed2"], WORK / "airline-ensemble")
    out = {"second_member_train_seconds": seconds}
    for name, path in (("second_member", WORK / "airline-seed2"), ("ensemble_of_2", WORK / "airline-ensemble")):
        results = load_predictor(path, "cpu", backend="torch").predict([e.text for e in test])
        out[name] = sentiment_metrics(test, [r.sentiment for r in results])
    return out


def run_augment(config: TrainConfig) -> dict:
    """Few-shot BANKING77 (15 per intent), with and without chat-noise augmentation.

    Scored on the clean test split and on a typo-noised copy of it (what chat text looks like).
    """
    train, test = banking_split()
    rng = random.Random(SEED)
    by_label: dict[str, list[Example]] = {}
    for e in train:
        by_label.setdefault(e.label, []).append(e)
    few = [e for group in by_label.values() for e in rng.sample(group, min(15, len(group)))]
    noisy_test = [Example(noisy_variant(e.text, rng, typo_rate=0.25), e.label) for e in test]
    demo_sentiment = read_labelled_csv(ROOT / "nlu" / "demo" / "sentiment.csv", "sentiment")
    out = {}
    for flag in (False, True):
        cfg = TrainConfig(**{**config.to_dict(), "augment": flag, "augment_copies": 2, "epochs": 8})
        result, seconds = finetune(f"augment-{flag}", few, demo_sentiment, cfg)
        predictor = Predictor(result.bundle, TorchBackend(result.bundle, "cpu"))
        clean = [r.top_intents[0]["intent"] for r in predictor.predict([e.text for e in test])]
        noisy = [r.top_intents[0]["intent"] for r in predictor.predict([e.text for e in noisy_test])]
        out["with_augment" if flag else "without_augment"] = {
            "clean_accuracy": intent_metrics(test, clean)["accuracy"],
            "noisy_accuracy": intent_metrics(noisy_test, noisy)["accuracy"],
            "train_seconds": seconds,
        }
    return out


def few_shot_banking(per_label: int = 15) -> tuple[list[Example], list[Example]]:
    """The few-shot BANKING77 training set of the augment part (same seed, same rows) and the test split."""
    train, test = banking_split()
    rng = random.Random(SEED)
    by_label: dict[str, list[Example]] = {}
    for e in train:
        by_label.setdefault(e.label, []).append(e)
    return [e for group in by_label.values() for e in rng.sample(group, min(per_label, len(group)))], test


def run_ensemble(config: TrainConfig) -> dict:
    """Three few-shot BANKING77 models (seeds differ) alone and averaged: accuracy gained, speed paid."""
    from nlu.engine import load_predictor
    from nlu.ensemble import write_ensemble

    few, test = few_shot_banking()
    demo_sentiment = read_labelled_csv(ROOT / "nlu" / "demo" / "sentiment.csv", "sentiment")
    members, out = [], {}
    for seed in (SEED, SEED + 1, SEED + 2):
        cfg = TrainConfig(**{**config.to_dict(), "augment": False, "epochs": 8, "seed": seed})
        _, seconds = finetune(f"ensemble-{seed}", few, demo_sentiment, cfg)
        members.append(WORK / f"ensemble-{seed}")
        out[f"seed_{seed}"] = {"train_seconds": seconds}
    write_ensemble(members, WORK / "ensemble")
    texts = [e.text for e in test]
    for name, path in [(f"seed_{SEED + i}", m) for i, m in enumerate(members)] + [("ensemble_of_3", WORK / "ensemble")]:
        predictor = load_predictor(path, "cpu", backend="torch")
        predictor.predict(texts[:64])  # warm-up
        started = time.perf_counter()
        top = [r.top_intents[0]["intent"] for r in predictor.predict(texts)]
        elapsed = time.perf_counter() - started
        out.setdefault(name, {}).update(accuracy=intent_metrics(test, top)["accuracy"],
                                        texts_per_s=len(texts) / elapsed)
    return out


def run_speed() -> dict:
    from nlu.engine import load_predictor

    model_dir = WORK / "banking77"
    if not (model_dir / "model.safetensors").exists():
        raise SystemExit("speed needs the banking77 model: run --parts banking first")
    predictor = load_predictor(model_dir, "cpu")
    texts = [e.text for e in banking_split()[1]][:512]
    predictor.predict(texts[:64])  # warm-up
    started = time.perf_counter()
    for text in texts[:200]:
        predictor.predict([text])
    single = 200 / (time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(0, len(texts), 64):
        predictor.predict(texts[i : i + 64])
    batched = len(texts) / (time.perf_counter() - started)
    return {"batch1_texts_per_s": single, "batch64_texts_per_s": batched}


# ---------------------------------------------------------------- report
def render(results: dict, config: TrainConfig) -> str:
    # long because it writes the report section top to bottom, one table after another: split, each piece
    # would be called once, in order, with the same handful of locals.
    b = results.get("baselines", {})
    lines = ["## NLU (`python -m bench.nlu`)", "", run_stamp(), runs_summary(results)]
    lines.append(f"Fine-tuning recipe: base all-MiniLM-L6-v2, {config.head} head, lr {config.lr:g} "
                 f"(heads {config.head_lr:g}), batch {config.batch_size}, up to {config.epochs} epochs with early "
                 f"stopping on a 10 % dev split of the training data, label smoothing {config.label_smoothing}, "
                 f"prototype-initialised heads, seed {config.seed}.\n")
    if "banking" in results or b:
        r = results.get("banking", {})
        rows = [["TF-IDF (word+char) + linear SVM", b.get("banking77/tfidf_svm", {}).get("accuracy", "-"),
                 b.get("banking77/tfidf_svm", {}).get("macro_f1", "-"), "-"],
                ["frozen MiniLM + logistic regression",
                 b.get("banking77/frozen_minilm_logreg", {}).get("accuracy", "-"),
                 b.get("banking77/frozen_minilm_logreg", {}).get("macro_f1", "-"), "-"],
                ["**Frontdesk fine-tune**", r.get("accuracy", "-"), r.get("macro_f1", "-"),
                 f"{r['train_seconds'] / 60:.1f} min" if r else "-"]]
        lines += ["### BANKING77 (dev split: 10 % of train.csv, stratified, seed 2024) — target accuracy ≥ 0.935",
                  "", table(["model", "accuracy", "macro-F1", "training time"], rows)]
        if r:
            lines.append(f"Train rows {r['train_rows']}, test rows {r['test_rows']}, best epoch {r['best_epoch']}. "
                         f"With the out-of-scope gate on (which BANKING77 does not need) accuracy is "
                         f"{r['accuracy_with_oos_gate']:.4f}.\n")
    if "clinc" in results or b:
        r = results.get("clinc", {})
        def row(name, m):
            return [name, m.get("in_scope_accuracy", "-"), m.get("oos_recall", "-"), m.get("accuracy", "-")]
        rows = [row("TF-IDF + linear SVM (oos as a class)", b.get("clinc150/tfidf_svm", {})),
                row("frozen MiniLM + logistic regression (oos as a class)", b.get("clinc150/frozen_minilm_logreg", {})),
                row("**Frontdesk fine-tune + calibrated oos rule**", r)]
        lines += ["### CLINC150 (train → val) — targets in-scope ≥ 0.96, oos recall ≥ 0.75", "",
                  table(["model", "in-scope accuracy", "oos recall", "overall accuracy"], rows),
                  "Published (test split): BERT 0.969 / 0.403, Rasa 0.915 / 0.453 (Larson et al., 2019).\n"]
        if r:
            lines.append(f"Calibrated thresholds: {json.dumps(r['thresholds'])}; "
                         f"training {r['train_seconds'] / 60:.1f} min.\n")
    if "airline" in results or b:
        r = results.get("airline", {})
        rows = [["TF-IDF + linear SVM", b.get("airline/tfidf_svm", {}).get("accuracy", "-"),
                 b.get("airline/tfidf_svm", {}).get("macro_f1", "-")],
                ["frozen MiniLM + logistic regression", b.get("airline/frozen_minilm_logreg", {}).get("accuracy", "-"),
                 b.get("airline/frozen_minilm_logreg", {}).get("macro_f1", "-")],
                ["**Frontdesk joint model (sentiment head)**", r.get("accuracy", "-"), r.get("macro_f1", "-")]]
        e = results.get("airline-ensemble")
        if e:
            rows += [["Frontdesk joint model, second seed", e["second_member"]["accuracy"],
                      e["second_member"]["macro_f1"]],
                     ["**Frontdesk ensemble of the two (`frontdesk ensemble`)**", e["ensemble_of_2"]["accuracy"],
                      e["ensemble_of_2"]["macro_f1"]]]
        lines += ["### Airline sentiment (20 % stratified split, seed 2024) — target macro-F1 ≥ 0.80", "",
                  table(["model", "accuracy", "macro-F1"], rows)]
        if r:
            lines.append("Trained jointly with the demo store's intents, as the product runs"
                         + (" (second seed: 2025; the ensemble averages both models' probabilities)" if e else "")
                         + ".\n")
    if "augment" in results:
        r = results["augment"]
        rows = [[k.replace("_", " "), v["clean_accuracy"], v["noisy_accuracy"]] for k, v in r.items()
                if not k.startswith("_")]
        lines += ["### Chat-noise augmentation (BANKING77, 15 examples per intent)", "",
                  table(["training", "clean test accuracy", "typo-noised test accuracy"], rows)]
    if "speed" in results:
        r = results["speed"]
        lines += ["### Inference speed (PyTorch, CPU, BANKING77 model)", "",
                  table(["batch", "texts/s"], [["1", r["batch1_texts_per_s"]], ["64", r["batch64_texts_per_s"]]])]
    if "ensemble" in results:
        r = {k: v for k, v in results["ensemble"].items() if not k.startswith("_")}
        singles = [v["accuracy"] for k, v in r.items() if k.startswith("seed_")]
        single_speed = sum(v["texts_per_s"] for k, v in r.items() if k.startswith("seed_")) / len(singles)
        rows = [[k.replace("_", " "), v["accuracy"], v["texts_per_s"]] for k, v in r.items()]
        lines += ["### Ensembling (BANKING77, 15 examples per intent, three seeds)", "",
                  table(["model", "test accuracy", "texts/s (batch of the whole split, CPU)"], rows),
                  f"Ensemble gain over the mean single model: "
                  f"{(r['ensemble_of_3']['accuracy'] - sum(singles) / len(singles)) * 100:+.2f} points, at "
                  f"{r['ensemble_of_3']['texts_per_s'] / single_speed:.2f}x "
                  "the single model's speed. Off by default (`frontdesk ensemble` builds one).\n"]
    lines += nlu_distill.render(results)
    return "\n".join(lines)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    parser.add_argument("--config", default="{}", help="JSON overrides for TrainConfig")
    parser.add_argument("--distill", default="{}", help="JSON overrides for DistillConfig (distill-* parts)")
    args = parser.parse_args()
    require_data()
    config = TrainConfig(**{"device": "auto", "seed": SEED, **json.loads(args.config)})
    # The public sets are large: students learn from them as they are (no augmented copies), for 3 epochs.
    distill_config = DistillConfig(**{"epochs": 3, "augment_copies": 0, "seed": SEED, **json.loads(args.distill)})
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    WORK.mkdir(parents=True, exist_ok=True)
    runners = {
        "baselines": run_baselines,
        "banking": lambda: run_banking(config),
        "clinc": lambda: run_clinc(config),
        "airline": lambda: run_airline(config),
        "airline-ensemble": lambda: run_airline_ensemble(config),
        "augment": lambda: run_augment(config),
        "speed": run_speed,
        "ensemble": lambda: run_ensemble(config),
        **{f"distill-{task}": (lambda task=task: nlu_distill.run_task(task, distill_config))
           for task in nlu_distill.TASKS},
        "distill-pruned": lambda: nlu_distill.run_pruned(distill_config),
        "distill-rescore": nlu_distill.run_rescore,
        "distill-direct": lambda: nlu_distill.run_direct(config),
        "distill-speed": nlu_distill.run_speed,
    }
    for part in [p.strip() for p in args.parts.split(",") if p.strip()]:
        if part not in runners:
            raise SystemExit(f"unknown part {part!r}; choose from {PARTS}")
        print(f"== {part}", flush=True)
        outcome = {**runners[part](), "_run": part_stamp()}
        print(json.dumps(outcome, default=float), flush=True)
        # Re-read before writing: another run may have finished other parts meanwhile.
        results = {**(json.loads(RESULTS.read_text()) if RESULTS.exists() else {}), part: outcome}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2, default=float) + "\n")
        write_section("nlu", render(results, config))
    write_section("nlu", render(results, config))
    print(f"wrote {RESULTS.relative_to(ROOT)} and docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
