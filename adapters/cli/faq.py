"""`frontdesk kb build | search | reload | check` (and `faq …`, the same commands under their first name).

`--replay` and `--gate` (adapters/cli/gate.py) add real traffic and the conversation tests to a check or reload."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from adapters.cli.exit_codes import fail as _fail
from adapters.cli.gate import (
    DaysOpt,
    GateOpt,
    MaxChangedOpt,
    ReplayOpt,
    TestsOpt,
    candidate_tests,
    gate_body,
    print_refusal,
    print_replay,
)
from adapters.cli.server import admin_request

faq_app = typer.Typer(help="Build, query and reload the knowledge base: FAQ entries and help-center articles.",
                      no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout (progress and logs on stderr).")]


@faq_app.command("build")
def build(
    kb: Annotated[Path, typer.Option("--kb", help="A file or folder of YAML, CSV, Markdown or JSONL entries, "
                                                  "with help-center articles under its articles/ folder.")],
    out: Annotated[Path, typer.Option("--out", help="Index directory to write.")],
    encoder: Annotated[Path | None, typer.Option("--encoder", help="Sentence encoder (e.g. from `faq tune`).",
                                                 envvar="FRONTDESK_FAQ_ENCODER")] = None,
    questions: Annotated[Path | None, typer.Option(
        "--questions", help="Customers' questions to calibrate on (CSV text,id: an FAQ or article id; empty: not "
                            "covered). Default: the folder's dev-questions.csv, else questions generated from the "
                            "entries and articles.",
        envvar="FRONTDESK_KB_QUESTIONS")] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", help="Intent model the bot serves beside this FAQ: calibrate the combined rule with it.")] = None,
    wrong_rate: Annotated[float, typer.Option("--wrong-rate", min=0.001, max=0.5,
                                              help="Target share of questions answered wrongly.")] = 0.05,
    base_url: Annotated[str, typer.Option("--articles-base-url", envvar="FRONTDESK_ARTICLES_BASE_URL",
                                          help="Link of an article without a front matter url: this + its path.")
                        ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Validate FAQ entries and articles, build a searchable index (re-embeds only what changed), calibrate its rule."""
    from knowledge.builder import build_index
    from knowledge.embedder import Embedder, EmbeddingCache
    from knowledge.loading import load_knowledge
    from knowledge.sources import KnowledgeBaseError, questions_file

    try:
        loaded = load_knowledge(kb, base_url)
        entries = loaded.entries
        classify = _load_classifier(model) if model else None
        embedder = Embedder(str(encoder) if encoder else None)
        cache = EmbeddingCache(embedder, out / "cache")  # a rebuild into the same --out re-embeds only changes
        index, base_vectors = build_index(entries, cache, questions=questions or questions_file(kb),
                                          classify=classify, target=wrong_rate)
    except KnowledgeBaseError as exc:
        raise _fail(str(exc)) from None
    index.with_source(loaded.summary(), loaded.wording)
    index.save(out, base_vectors, encoder=embedder.model_path)
    cache.save()
    version = index.version.to_dict()
    t = index.thresholds
    if as_json:
        sys.stdout.write(json.dumps({"out": str(out), "version": version, "entries": len(entries),
                                     **index.summary, "calibration": t.method,
                                     "index_type": index.version.index_type, "embedded": embedder.calls,
                                     "wording": sorted(loaded.wording or {}), "answer_rule": _rule(t)},
                                    default=str) + "\n")
        return
    _print_build(loaded, index, out, embedder.calls)


def _print_build(loaded, index, out: Path, embedded: int) -> None:
    """What `kb build` made, for a person: counts, the company's wording, the calibrated rule."""
    from knowledge.wording import WORDING_FILE

    version, t = index.version.to_dict(), index.thresholds
    typer.echo(f"index {version['version']} written to {out}: {loaded.faq_entries} FAQ entries; "
               f"{len(loaded.articles)} articles, {loaded.sections} sections, {loaded.passages} passages "
               f"({index.version.index_type}; {embedded} texts embedded)")
    if loaded.wording:
        typer.echo(f"wording: {WORDING_FILE} sets {', '.join(sorted(loaded.wording))}; the rest as the defaults")
    typer.echo(f"answer rule: {t.method}")
    typer.echo(f"  answer >= {t.answer} with a lead of {t.margin}; suggest >= {t.suggest}; "
               f"linked-intent boost {t.intent_boost} at confidence >= {t.intent_confidence}")
    if t.measured:
        m = t.measured
        typer.echo(f"  on those questions: {m['right_of_covered']:.0%} of covered answered right, "
                   f"{m['wrong_rate']:.1%} answered wrongly, {m['declined_of_uncovered']:.0%} of uncovered declined"
                   + (f", {m['declined_of_near_misses']:.0%} of {m['near_misses']} near misses declined"
                      if m.get("near_misses") else ""))


def _rule(t) -> dict:
    """The calibrated answer rule, as `faq build --json` reports it."""
    return {"method": t.method, "answer": t.answer, "margin": t.margin, "suggest": t.suggest,
            "intent_boost": t.intent_boost, "intent_confidence": t.intent_confidence, "measured": t.measured}


def _load_classifier(model: Path):
    """The intent model's batch prediction, for calibrating the combined answer rule."""
    from nlu.artifacts import ModelLoadError
    from nlu.engine import load_predictor

    try:
        predictor = load_predictor(model, "cpu")
    except (ModelLoadError, ValueError) as exc:
        raise _fail(f"cannot load the model {model}: {exc}") from None
    return predictor.predict


@faq_app.command("tune")
def tune(
    kb: Annotated[Path, typer.Option("--kb", help="Knowledge base whose alternates to learn from.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the tuned sentence encoder.")],
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Fine-tune the retrieval encoder on the FAQ's own paraphrases; serve it with FRONTDESK_FAQ_ENCODER."""
    from knowledge.embedder import default_model_path
    from knowledge.sources import KnowledgeBaseError, load_entries
    from knowledge.tuning import paraphrase_groups, tune_encoder

    try:
        entries = load_entries(kb)
    except KnowledgeBaseError as exc:
        raise _fail(str(exc)) from None
    if len(paraphrase_groups(entries)) < 2:
        raise _fail("tuning needs at least two entries with alternates")
    path = tune_encoder(entries, default_model_path(), out, epochs=epochs, seed=seed)
    typer.echo(f"tuned encoder written to {path}; use it with FRONTDESK_FAQ_ENCODER={path}")


@faq_app.command("encoder")
def encoder(
    kb: Annotated[Path, typer.Option("--kb", help="Knowledge base whose texts to learn from.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the query encoder.")],
    texts: Annotated[list[Path] | None, typer.Option(
        "--texts", help="More customer texts to learn from: a text file, one per line (repeatable).")] = None,
    teacher: Annotated[Path | None, typer.Option(
        "--encoder", help="The retrieval encoder it stands in for: the one FRONTDESK_FAQ_ENCODER names, if set "
                          "(default: the packaged one).")] = None,
    layers: Annotated[int, typer.Option(
        "--layers", min=1, help="Layers the student keeps (fewer: faster, further from its teacher).")] = 6,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 6,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Distil an int8 ONNX query encoder from the retrieval encoder; serve it with FRONTDESK_QUERY_ENCODER."""
    from knowledge.embedder import default_model_path
    from knowledge.query_distill import distill_query_encoder, knowledge_texts
    from knowledge.sources import KnowledgeBaseError

    try:
        learned = knowledge_texts(kb)
        for path in texts or []:
            learned += path.read_text(encoding="utf-8").splitlines()
        info = distill_query_encoder(str(teacher or default_model_path()), learned, out,
                                     layers=layers, epochs=epochs, seed=seed,
                                     progress=lambda line: typer.echo(line, err=True))
    except KnowledgeBaseError as exc:
        raise _fail(str(exc)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _fail(f"query encoder not made: {exc}") from None
    if as_json:
        sys.stdout.write(json.dumps({"out": str(out), **info.to_dict()}) + "\n")
    else:
        typer.echo(f"query encoder written to {out} ({info.layers} layers, agreement {info.agreement}); "
                   f"use it with FRONTDESK_QUERY_ENCODER={out}")


@faq_app.command("search")
def search(
    index: Annotated[Path, typer.Option("--index", help="Index directory from `faq build`.")],
    queries: Annotated[list[str], typer.Argument(help="Questions to look up.")],
    top_k: Annotated[int, typer.Option("--top-k", min=1)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per query.")] = False,
) -> None:
    """Best answers (FAQ entries, articles) for each query, best first, with their sources."""
    from knowledge.embedder import Embedder
    from knowledge.index import FaqIndex

    if not (index / "index.json").is_file():
        raise _fail(f"{index} is not an index directory (build one with `frontdesk kb build`)")
    faq = FaqIndex.load(index)
    embedder = Embedder(json.loads((index / "index.json").read_text()).get("encoder"))
    results = faq.search_vectors(embedder.encode(queries), list(queries), top_k=top_k)
    for query, hits in zip(queries, results, strict=True):
        if as_json:
            sys.stdout.write(json.dumps({"query": query, "hits": [{"id": h.id, "score": h.score, "source": h.source}
                                                                  for h in hits]}, ensure_ascii=False) + "\n")
            continue
        decision = faq.decide(hits, query=query)
        typer.echo(f"{query}  [{decision.kind}]")
        for hit in hits:
            link = f"  <{hit.entry.article.url}>" if hit.entry.article and hit.entry.article.url else ""
            typer.echo(f"  {hit.score:.3f}  {hit.id}: {hit.entry.question}{link}")


@faq_app.command("reload")
def reload(
    url: Annotated[str, typer.Option("--url", help="Base URL of the running server.")] = "http://127.0.0.1:8000",
    gate: GateOpt = False,
    force: Annotated[bool, typer.Option("--force", help="With --gate: reload even when refused (audited).")] = False,
    max_changed: MaxChangedOpt = None,
    days: DaysOpt = None,
    tests: TestsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a running server to reload its knowledge base (FRONTDESK_ADMIN_TOKEN, else the one `run` generated);
    with --gate, only when the conversation tests pass on it and few replayed decisions change."""
    ran = candidate_tests(tests) if gate else None  # the configured source is the candidate
    body = {"gate": gate_body(gate, max_changed, days, ran), "force": force} if gate else None
    response = admin_request("POST", url, "/admin/faq/reload", body, timeout=300)
    if response.status_code == 422:
        body = response.json()
        if as_json:
            sys.stdout.write(json.dumps({"ok": False, **body}) + "\n")
        for problem in body.get("errors", []):
            typer.echo(f"{problem['file']}:{problem['line']}: {problem['message']}", err=True)
        raise _fail(f"reload rejected; still serving version {(body.get('version') or {}).get('version')}")
    if response.status_code == 409:
        detail = response.json().get("detail", {})
        if as_json:
            sys.stdout.write(json.dumps({"ok": False, **detail}) + "\n")
        print_refusal(detail)
        raise _fail(f"server answered 409: {detail.get('reason', detail)}")
    if response.status_code != 200:
        raise _fail(f"server answered {response.status_code}: {response.text[:200]}")
    body = response.json()
    if as_json:
        sys.stdout.write(json.dumps({"ok": True, **body}) + "\n")
        return
    print_replay(None, None, ran)
    state = "now serving" if body.get("changed") else "unchanged, serving"
    typer.echo(f"reloaded: {state} version {body['version']['version']} ({body['version']['entries']} entries)")


@faq_app.command("check")
def check(
    candidate: Annotated[Path, typer.Option("--candidate", help="A knowledge-base file or folder (as FRONTDESK_KB "
                                                                "names one) to compare with the serving one.")],
    url: Annotated[str, typer.Option("--url", help="Base URL of the running server.")] = "http://127.0.0.1:8000",
    replay: ReplayOpt = False,
    days: DaysOpt = None,
    tests: TestsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a candidate knowledge base on the server beside the serving one and compare, changing nothing: its
    contents and calibration, and with --replay the decisions that would change on real traffic and the
    conversation tests on it."""
    path = candidate.resolve()
    response = admin_request("POST", url, "/admin/faq/check", {"candidate": str(path), "replay": replay, "days": days},
                             timeout=600)
    if response.status_code == 422:
        detail = response.json().get("detail", {})
        for problem in detail.get("errors", []) if isinstance(detail, dict) else []:
            typer.echo(f"{problem['file']}:{problem['line']}: {problem['message']}", err=True)
        raise _fail(detail.get("reason", detail) if isinstance(detail, dict) else str(detail))
    if response.status_code != 200:
        raise _fail(f"server answered {response.status_code}: {response.text[:200]}")
    body = response.json()
    body["tests"] = candidate_tests(tests, kb=path) if replay else None
    if as_json:
        sys.stdout.write(json.dumps(body) + "\n")
        return
    typer.echo(f"serving {body['serving']['version']} ({body['serving']['entries']} entries)  candidate "
               f"{body['candidate']['version']} ({body['candidate']['entries']} entries)")
    for which in ("serving", "candidate"):
        measured = body["calibration"][which]
        if measured:
            typer.echo(f"  {which} on its calibration questions: {measured['right_of_covered']:.0%} of covered "
                       f"answered right, {measured['wrong_rate']:.1%} wrongly, "
                       f"{measured['declined_of_uncovered']:.0%} of uncovered declined")
    print_replay(None, body.get("replay"), body["tests"])

