"""`frontdesk faq build | search | reload`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from adapters.cli_errors import fail as _fail

faq_app = typer.Typer(help="Build, query and reload the FAQ knowledge base.", no_args_is_help=True)


@faq_app.command("build")
def build(
    kb: Annotated[Path, typer.Option("--kb", help="A file or folder of YAML, CSV, Markdown or JSONL entries.")],
    out: Annotated[Path, typer.Option("--out", help="Index directory to write.")],
    encoder: Annotated[Path | None, typer.Option("--encoder", help="Sentence encoder (e.g. from `faq tune`).",
                                                 envvar="FRONTDESK_FAQ_ENCODER")] = None,
) -> None:
    """Validate the entries and build a searchable index (re-embeds only what changed)."""
    from knowledge.builder import build_index
    from knowledge.embedder import Embedder, EmbeddingCache
    from knowledge.sources import KnowledgeBaseError, load_entries

    try:
        entries = load_entries(kb)
    except KnowledgeBaseError as exc:
        raise _fail(str(exc)) from None
    embedder = Embedder(str(encoder) if encoder else None)
    cache = EmbeddingCache(embedder, out / "cache")  # a rebuild into the same --out re-embeds only changes
    index, base_vectors = build_index(entries, cache)
    index.save(out, base_vectors, encoder=embedder.model_path)
    cache.save()
    version = index.version.to_dict()
    typer.echo(f"index {version['version']} with {len(entries)} entries written to {out} "
               f"({index.version.index_type}; answer >= {index.thresholds.answer}, "
               f"suggest >= {index.thresholds.suggest}; {embedder.calls} texts embedded)")


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


@faq_app.command("search")
def search(
    index: Annotated[Path, typer.Option("--index", help="Index directory from `faq build`.")],
    queries: Annotated[list[str], typer.Argument(help="Questions to look up.")],
    top_k: Annotated[int, typer.Option("--top-k", min=1)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per query.")] = False,
) -> None:
    """Best entries for each query, best first."""
    from knowledge.embedder import Embedder
    from knowledge.index import FaqIndex

    if not (index / "index.json").is_file():
        raise _fail(f"{index} is not an index directory (build one with `frontdesk faq build`)")
    faq = FaqIndex.load(index)
    embedder = Embedder(json.loads((index / "index.json").read_text()).get("encoder"))
    results = faq.search_vectors(embedder.encode(queries), list(queries), top_k=top_k)
    for query, hits in zip(queries, results, strict=True):
        if as_json:
            sys.stdout.write(json.dumps({"query": query, "hits": [{"id": h.id, "score": h.score} for h in hits]},
                                        ensure_ascii=False) + "\n")
            continue
        decision = faq.decide(hits)
        typer.echo(f"{query}  [{decision.kind}]")
        for hit in hits:
            typer.echo(f"  {hit.score:.3f}  {hit.id}: {hit.entry.question}")


@faq_app.command("reload")
def reload(
    url: Annotated[str, typer.Option("--url", help="Base URL of the running server.")] = "http://127.0.0.1:8000",
) -> None:
    """Ask a running server to reload its knowledge base (uses FRONTDESK_ADMIN_TOKEN)."""
    import httpx

    token = os.environ.get("FRONTDESK_ADMIN_TOKEN")
    if not token:
        raise _fail("FRONTDESK_ADMIN_TOKEN is not set")
    try:
        response = httpx.post(f"{url.rstrip('/')}/admin/faq/reload",
                              headers={"Authorization": f"Bearer {token}"}, timeout=120)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach {url}: {exc}") from None
    if response.status_code == 422:
        body = response.json()
        for problem in body.get("errors", []):
            typer.echo(f"{problem['file']}:{problem['line']}: {problem['message']}", err=True)
        raise _fail(f"reload rejected; still serving version {(body.get('version') or {}).get('version')}")
    if response.status_code != 200:
        raise _fail(f"server answered {response.status_code}: {response.text[:200]}")
    body = response.json()
    state = "now serving" if body.get("changed") else "unchanged, serving"
    typer.echo(f"reloaded: {state} version {body['version']['version']} ({body['version']['entries']} entries)")
