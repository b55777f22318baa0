"""Teaching the retriever the knowledge base's own paraphrases (contrastive fine-tuning).

Every entry's question and alternates are labelled paraphrases written by an admin. We
fine-tune a copy of the sentence encoder so that texts of one entry land close together
and texts of different entries far apart (in-batch negatives, the multiple-negatives
ranking loss), then save it as an ordinary sentence-transformers directory. Fine-tuning
changes every vector, so it is a deliberate step (`frontdesk faq tune`), not part of each
reload; reloads embed new and changed entries with whichever encoder is configured.

Three alternates per entry are few. Customers' own questions (from chat logs or a ticket
history, no labels needed) add what they lack: in each *self-training* round the current
encoder assigns the questions it is surest about to entries, and a fresh copy of the base
encoder learns from the admin's paraphrases plus those. Only the encoder learns from them;
the index keeps serving exactly the admin's texts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from knowledge.sources import FaqEntry

# Questions taken per entry in self-training round r: PSEUDO_PER_ENTRY * r, the surest first
# (docs/BENCHMARKS.md, FAQ notes: precision of the assignments and the gain per round).
PSEUDO_PER_ENTRY = 20
# Self-training groups are larger than an admin's few paraphrases, so those rounds pair each text with
# one random partner per epoch instead of with every other text of its entry (which grows quadratically).
SELF_TRAINING_EPOCHS = 3

Pair = tuple[str, str]


@dataclass
class TuningReport:
    path: Path
    rounds: list[dict] = field(default_factory=list)  # per self-training round: questions assigned, entries


def paraphrase_groups(entries: list[FaqEntry]) -> list[list[str]]:
    return [[e.question, *e.alternates] for e in entries if e.alternates]


def _all_pairs(texts: list[str], rng: random.Random) -> list[Pair]:
    return [(a, b) for i, a in enumerate(texts) for j, b in enumerate(texts) if i != j]


def _one_partner_each(texts: list[str], rng: random.Random) -> list[Pair]:
    return [(a, texts[rng.choice([j for j in range(len(texts)) if j != i])]) for i, a in enumerate(texts)]


def _batches(groups: list[list[str]], batch_size: int, rng: random.Random,
             pairing: Callable[[list[str], random.Random], list[Pair]] = _all_pairs) -> list[list[Pair]]:
    """Anchor/positive pairs, at most one per entry in each batch (others are the negatives)."""
    pending = [(g, pair) for g, texts in enumerate(groups) if len(texts) > 1 for pair in pairing(texts, rng)]
    rng.shuffle(pending)
    batches: list[list[Pair]] = []
    while pending:
        used, batch, rest = set(), [], []
        for g, pair in pending:
            if g not in used and len(batch) < batch_size:
                used.add(g)
                batch.append(pair)
            else:
                rest.append((g, pair))
        batches.append(batch)
        pending = rest
    return [b for b in batches if len(b) > 1]


def _fine_tune(groups: list[list[str]], base_path: str, out: Path, *, epochs: int, batch_size: int, lr: float,
               scale: float, seed: int, device: str,
               pairing: Callable[[list[str], random.Random], list[Pair]]) -> Path:
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SentenceTransformer(base_path, device=device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)

    def embed(texts: list[str]) -> torch.Tensor:
        features = (model.preprocess if hasattr(model, "preprocess") else model.tokenize)(texts)
        features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)

    for _ in range(epochs):
        for batch in _batches(groups, batch_size, rng, pairing):
            anchors = embed([a for a, _ in batch])
            positives = embed([b for _, b in batch])
            logits = scale * anchors @ positives.T
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch), device=device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    model.save(str(out))
    return out


def assign_questions(entries: list[FaqEntry], encoder_path: str, questions: Sequence[str],
                     per_entry: int) -> dict[str, list[str]]:
    """Each entry's surest questions under `encoder_path`: at most `per_entry` each, best first.

    A question goes to its top entry; how sure is its score plus its lead over the runner-up
    (a question between two entries teaches the wrong boundary half of the time).
    """
    from knowledge.builder import build_index
    from knowledge.embedder import Embedder, EmbeddingCache

    known = {text for e in entries for text in (e.question, *e.alternates)}
    unique = list(dict.fromkeys(q.strip() for q in questions if q.strip() and q.strip() not in known))
    if not unique:
        return {}
    cache = EmbeddingCache(Embedder(encoder_path))
    index, _ = build_index(entries, cache)
    ranked: dict[str, list[tuple[float, str]]] = {}
    for question, hits in zip(unique, index.search_vectors(cache.embedder.encode(unique), unique, top_k=2),
                              strict=True):
        if not hits:
            continue
        lead = hits[0].score - (hits[1].score if len(hits) > 1 else 0.0)
        ranked.setdefault(hits[0].id, []).append((hits[0].score + lead, question))
    return {entry_id: [q for _, q in sorted(found, reverse=True)[:per_entry]] for entry_id, found in ranked.items()}


def tune_encoder(entries: list[FaqEntry], base_path: str, out_dir: str | Path, *, epochs: int = 2,
                 batch_size: int = 32, lr: float = 3e-5, scale: float = 20.0, seed: int = 0,
                 device: str = "cpu", questions: Sequence[str] = (), rounds: int = 2,
                 on_round: Callable[[dict], None] | None = None) -> TuningReport:
    """Fine-tune on the alternates, then (given customer questions) `rounds` rounds of self-training."""
    out = Path(out_dir)
    settings = {"batch_size": batch_size, "lr": lr, "scale": scale, "seed": seed, "device": device}
    _fine_tune(paraphrase_groups(entries), base_path, out, epochs=epochs, pairing=_all_pairs, **settings)
    report = TuningReport(out)
    if not questions:
        return report
    for round_no in range(1, rounds + 1):
        assigned = assign_questions(entries, str(out), questions, PSEUDO_PER_ENTRY * round_no)
        groups = [[e.question, *e.alternates, *assigned.get(e.id, [])] for e in entries]
        _fine_tune(groups, base_path, out, epochs=SELF_TRAINING_EPOCHS, pairing=_one_partner_each, **settings)
        summary = {"round": round_no, "questions": sum(map(len, assigned.values())), "entries": len(assigned)}
        report.rounds.append(summary)
        if on_round:
            on_round(summary)
    return report
