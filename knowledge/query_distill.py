"""Making a query encoder (`knowledge.query_encoder`): the retrieval encoder's layers, or some of them taught
to give its vectors, exported to int8 ONNX (`frontdesk kb encoder`).

Every layer kept (the default), nothing is trained: the teacher itself, quantized, runs several times faster
than in PyTorch and stays within the start-up check. Fewer layers are faster still: a student started from the
teacher's own layers (spread from first to last) and taught with the teacher's vectors as targets lands in the
same space, so the entries' vectors built by the teacher still serve. What it learns from is what customers
write to this company: the knowledge base's questions, alternates, article sentences and generated calibration
questions, plus any texts given (say, customers' questions the bot has seen). On a demo-sized knowledge base
and minutes of CPU, 3 layers did not get close enough to pass the check (docs/SCALING.md). A tenth of the texts
is held out, never trained on, and the served int8 graph's agreement with the teacher on them is recorded in
the manifest.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from knowledge.embedder import model_fingerprint
from knowledge.query_encoder import MANIFEST, PROBES, QueryEncoder, QueryEncoderInfo
from nlu.export import OPSET, fuse, quantize_int8
from nlu.loop import optimizer_step, warmup_then_decay
from nlu.onnx_backend import ONNX_FILE

MAX_LENGTH = 128  # questions are short; the teacher's 256 would only pad the passes
MAX_WORDS = 40  # longer texts are left out of what it learns from (see `distill_query_encoder`)
PROBE_TEXTS = 32  # held-out texts kept in the directory, for the check at every load
SENTENCE_FILES = ("modules.json", "sentence_bert_config.json", "1_Pooling")  # so SentenceTransformer(dir) loads


class _Pooled(torch.nn.Module):
    """Encoder + masked mean pooling + L2 normalisation: the teacher's sentence vector, as one graph."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def knowledge_texts(source: str | Path) -> list[str]:
    """What customers of this knowledge base write, as far as it tells: every embedded text (questions,
    alternates, article sentences and passages), its generated calibration questions and its own, if any."""
    from knowledge.calibration import load_questions
    from knowledge.generation import generated_set
    from knowledge.index import entry_texts
    from knowledge.loading import load_knowledge
    from knowledge.sources import questions_file

    entries = load_knowledge(source).entries
    texts, _, _ = entry_texts(entries)
    asked = questions_file(Path(source)) if Path(source).is_dir() else None
    own = load_questions(asked, entries).questions if asked else []
    return [*texts, *(q.text for q in generated_set(entries).questions), *(q.text for q in own)]


def spread_layers(total: int, keep: int) -> list[int]:
    """`keep` of `total` layers, evenly spread, first and last included (the last is nearest the output)."""
    if not 1 <= keep <= total:
        raise ValueError(f"--layers must be between 1 and {total} (got {keep})")
    return sorted({round(i * (total - 1) / max(1, keep - 1)) for i in range(keep)}) if keep > 1 else [total - 1]


def distill_query_encoder(teacher_path: str, texts: Sequence[str], out: str | Path, *, layers: int = 6,
                          epochs: int = 6, batch_size: int = 32, lr: float = 1e-4, seed: int = 0,
                          progress: Callable[[str], None] | None = None) -> QueryEncoderInfo:
    """Distil, export and check a query encoder into `out` (replaced only once the new one is complete)."""
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    say = progress or (lambda _: None)
    # Customers write questions, not passages: a long text would cost a pass of its own length and teach
    # little about a question (passages are still learned from, sentence by sentence).
    distinct = list(dict.fromkeys(t.strip() for t in texts if t and t.strip() and len(t.split()) <= MAX_WORDS))
    if len(distinct) < 2 * PROBE_TEXTS:
        raise ValueError(f"a query encoder needs at least {2 * PROBE_TEXTS} distinct texts to learn from "
                         f"(got {len(distinct)})")
    random.Random(seed).shuffle(distinct)
    held = max(PROBE_TEXTS, len(distinct) // 10)
    held_out, train = distinct[:held], distinct[held:]
    torch.manual_seed(seed)
    say(f"teacher's vectors for {len(distinct)} texts")
    teacher = SentenceTransformer(teacher_path, device="cpu")
    targets = teacher.encode(distinct, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False).astype(np.float32)
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    student = AutoModel.from_pretrained(teacher_path, attn_implementation="eager")
    total = student.config.num_hidden_layers
    kept = spread_layers(total, layers)
    student.encoder.layer = torch.nn.ModuleList(student.encoder.layer[i] for i in kept)
    student.config.num_hidden_layers = len(kept)
    model = _Pooled(student)
    if len(kept) < total:  # every layer kept: the teacher itself, only quantized; nothing to learn
        _train(model, tokenizer, train, torch.from_numpy(targets[held:]), epochs, batch_size, lr, seed, say)

    final = Path(out)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))  # same disk: the rename is atomic
    try:
        student.save_pretrained(work)
        tokenizer.save_pretrained(work)
        for name in SENTENCE_FILES:
            _copy(Path(teacher_path) / name, work / name)
        _export(model, tokenizer, work)
        probes = held_out[:PROBE_TEXTS]
        np.save(work / PROBES, targets[:PROBE_TEXTS])
        info = QueryEncoderInfo(len(kept), int(targets.shape[1]), MAX_LENGTH, Path(teacher_path).name,
                                tuple(probes), {}, model_fingerprint(Path(teacher_path)))
        _write(work, info)
        served = QueryEncoder(work)
        info = replace(info, agreement=agreement(served.encode(held_out), targets[:held], targets[held:]) |
                       {"texts": len(train), "held_out": held, "layers_kept": kept})
        _write(work, info)
        if final.exists():
            if not (final / MANIFEST).is_file() and any(final.iterdir()):
                raise ValueError(f"{final} exists and is not a query-encoder directory: not replaced")
            shutil.rmtree(final)
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"query encoder written to {final}: {info.agreement}")
    return info


def agreement(student: np.ndarray, teacher: np.ndarray, others: np.ndarray) -> dict:
    """How alike the student's and the teacher's vectors for the same held-out texts are: their cosine, and how
    often both find the same nearest text among the training texts' teacher vectors (a retrieval's top 1)."""
    cosine = np.sum(student * teacher, axis=1)
    same_top = np.argmax(student @ others.T, axis=1) == np.argmax(teacher @ others.T, axis=1)
    return {"mean_cosine": round(float(cosine.mean()), 4), "min_cosine": round(float(cosine.min()), 4),
            "top1_agreement": round(float(same_top.mean()), 4)}


def _train(model: _Pooled, tokenizer, texts: list[str], targets: torch.Tensor, epochs: int, batch_size: int,
           lr: float, seed: int, say: Callable[[str], None]) -> None:
    """Regress the student's vectors on the teacher's: mean squared error plus (1 - cosine)."""
    rng = random.Random(seed)
    steps = epochs * ((len(texts) + batch_size - 1) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = warmup_then_decay(optimizer, steps, 0.1)
    model.train()
    for epoch in range(epochs):
        order = list(range(len(texts)))
        rng.shuffle(order)
        # Batches of like lengths (sorted within windows of 8 batches, the batches then shuffled): little padding.
        window = batch_size * 8
        order = [i for s in range(0, len(order), window) for i in sorted(order[s : s + window],
                                                                          key=lambda i: len(texts[i]))]
        batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        rng.shuffle(batches)
        total, started = 0.0, time.perf_counter()
        for rows in batches:
            batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=MAX_LENGTH,
                              return_tensors="pt")
            vectors = model(batch["input_ids"], batch["attention_mask"])
            goal = targets[rows]
            loss = ((vectors - goal) ** 2).sum(-1).mean() + (1 - (vectors * goal).sum(-1)).mean()
            optimizer_step(model, loss, optimizer, scheduler)
            total += float(loss.detach()) * len(rows)
        say(f"epoch {epoch + 1}/{epochs}: loss {total / len(texts):.4f} ({time.perf_counter() - started:.0f} s)")
    model.eval()


def _export(model: _Pooled, tokenizer, folder: Path) -> None:
    """`model.onnx`: the pooled graph, fused where exact, int8."""
    sample = tokenizer(["where is my order", "hi"], padding=True, return_tensors="pt")
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about Python control flow in the HF attention code
            torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"]), str(fp32), dynamo=False,
                              input_names=["input_ids", "attention_mask"], output_names=["embeddings"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"}, "embeddings": {0: "batch"}},
                              opset_version=OPSET, do_constant_folding=True)
        fused = fuse(fp32, Path(scratch) / "fused.onnx", model.encoder.config, tokenizer, compared=1)
        quantize_int8(fused or fp32, folder / ONNX_FILE)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif source.is_file():
        shutil.copy2(source, target)


def _write(folder: Path, info: QueryEncoderInfo) -> None:
    (folder / MANIFEST).write_text(json.dumps(info.to_dict(), indent=2) + "\n")
