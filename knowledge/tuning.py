"""Teaching the retriever the knowledge base's own paraphrases (contrastive fine-tuning).

Every entry's question and alternates are labelled paraphrases written by an admin. We
fine-tune a copy of the sentence encoder so that texts of one entry land close together
and texts of different entries far apart (in-batch negatives, the multiple-negatives
ranking loss), then save it as an ordinary sentence-transformers directory. Fine-tuning
changes every vector, so it is a deliberate step (`frontdesk faq tune`), not part of each
reload; reloads embed new and changed entries with whichever encoder is configured.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from knowledge.records import FaqEntry


def paraphrase_groups(entries: list[FaqEntry]) -> list[list[str]]:
    return [[e.question, *e.alternates] for e in entries if e.alternates]


def _batches(groups: list[list[str]], batch_size: int, rng: random.Random) -> list[list[tuple[str, str]]]:
    """Anchor/positive pairs, at most one per entry in each batch (others are the negatives)."""
    pairs_by_group = []
    for g, texts in enumerate(groups):
        pairs = [(a, b) for i, a in enumerate(texts) for j, b in enumerate(texts) if i != j]
        rng.shuffle(pairs)
        pairs_by_group.append([(g, p) for p in pairs])
    batches: list[list[tuple[str, str]]] = []
    pending = [p for group in pairs_by_group for p in group]
    rng.shuffle(pending)
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


def tune_encoder(entries: list[FaqEntry], base_path: str, out_dir: str | Path, *, epochs: int = 2,
                 batch_size: int = 32, lr: float = 3e-5, scale: float = 20.0, seed: int = 0,
                 device: str = "cpu") -> Path:
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SentenceTransformer(base_path, device=device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    groups = paraphrase_groups(entries)

    def embed(texts: list[str]) -> torch.Tensor:
        features = (model.preprocess if hasattr(model, "preprocess") else model.tokenize)(texts)
        features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)

    for _ in range(epochs):
        for batch in _batches(groups, batch_size, rng):
            anchors = embed([a for a, _ in batch])
            positives = embed([b for _, b in batch])
            logits = scale * anchors @ positives.T
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch), device=device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    out = Path(out_dir)
    model.save(str(out))
    return out
