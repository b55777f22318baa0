"""Distillation: a smaller student that answers like its teacher, in the same model directory format.

What `frontdesk distill` runs. The student is the teacher with fewer transformer layers, initialised
from the teacher's own layers (`nlu.model.spread_layers`: the first, the last, evenly between) and
its heads, so training starts close to the teacher instead of from the base model. It then learns to
match, on every text:

* the teacher's intent and sentiment distributions at temperature T (Hinton et al.): every text gets
  both targets, so sentiment-only and unlabelled texts teach the intent head too;
* the teacher's pooled embedding (cosine): the out-of-scope rule and the neighbour vote work in that
  space, so keeping it keeps them working;
* the gold labels where there are any (a smaller weight: the teacher already encodes them).

A student can also be narrower (`ffn_width`): each feed-forward block keeps the hidden neurons that
matter most on the distillation texts (`nlu.prune`), before training, so training repairs what the cut
lost.

Texts: the teacher's training split (the same stratified split, so the teacher's dev rows stay unseen),
chat-noise copies of it (`nlu.augment`), and any unlabelled texts given. The word embeddings are
frozen: they are most of the parameters, the teacher's are already good, and their optimiser update
would cost more than the small encoder's forward pass. The student is then calibrated on the dev
split exactly like a trained model (`nlu.fit.build_bundle`: out-of-scope thresholds, neighbour bank,
sentiment bias) and saved with `nlu.fit.save_and_evaluate`: it loads, exports, deploys and serves
like any model directory.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from nlu.artifacts import ModelBundle, ModelLoadError, load_bundle
from nlu.data import Example
from nlu.device import resolve_device
from nlu.fit import FitResult, build_bundle, save_and_evaluate
from nlu.loop import BestOnDev, optimizer_step, warmup_then_decay
from nlu.model import JointClassifier, shrink_encoder, spread_layers
from nlu.progress import TrainingProgress
from nlu.train import (
    TaskData,
    TrainConfig,
    TrainedState,
    _length_bucketed_batches,
    _pad,
    _prepare_task,
    encode_all,
    evaluate_dev,
    seed_everything,
)


class DistillError(ValueError):
    """The teacher or the data cannot be distilled; the message names which file and why."""


@dataclass
class DistillConfig:
    layers: int = 4  # the smallest student that kept its teacher's scores (docs/BENCHMARKS.md)
    ffn_width: int | None = None  # hidden neurons each feed-forward block keeps (None: all; `nlu.prune`)
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 5e-4
    temperature: float = 2.0
    gold_weight: float = 0.5
    embedding_weight: float = 1.0
    augment_copies: int = 1
    patience: int = 2
    seed: int = 13
    device: str = "auto"
    max_steps: int | None = None  # cap for smoke tests

    def to_dict(self) -> dict:
        return asdict(self)


def load_teacher(teacher_dir: str | Path) -> ModelBundle:
    """The teacher's bundle, or a DistillError that says what is wrong with the directory."""
    from nlu.ensemble import is_ensemble

    path = Path(teacher_dir)
    if path.is_dir() and is_ensemble(path):
        raise DistillError(f"teacher {path} is an ensemble; distil one of its members (or a single model)")
    try:
        return load_bundle(path, "cpu")
    except ModelLoadError as exc:
        raise DistillError(f"cannot read teacher: {exc}") from None
    except (OSError, ValueError) as exc:
        raise DistillError(f"cannot read teacher {path}: {exc}") from None


@dataclass(frozen=True)
class RecordedData:
    """A data file `frontdesk train` read, and the conflict rule it read it with."""

    path: Path
    rule: str = "drop"


def recorded_data(teacher_dir: str | Path) -> dict[str, RecordedData]:
    """What `frontdesk train` recorded in the teacher's metrics.json, per task (`intent`, `sentiment`)."""
    metrics_path = Path(teacher_dir) / "metrics.json"
    try:
        data = json.loads(metrics_path.read_text(encoding="utf-8")).get("data") or {}
    except (OSError, ValueError):
        return {}
    return {task: RecordedData(Path(info.get("path") or info["file"]), info.get("rule") or "drop")
            for task, info in data.items() if isinstance(info, dict) and (info.get("path") or info.get("file"))}


def read_texts(path: str | Path) -> list[str]:
    """Unlabelled texts from a CSV with a `text` column (other columns are ignored)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "text" not in reader.fieldnames:
                raise DistillError(f"{path}: no 'text' column in the header (found {reader.fieldnames})")
            return [row["text"].strip() for row in reader if (row.get("text") or "").strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DistillError(f"cannot read {path}: {exc}") from None


def _task(examples: Sequence[Example], labels: list[str], tokenizer, config: TrainConfig, what: str) -> TaskData:
    unknown = sorted({e.label for e in examples} - set(labels))
    if unknown:
        raise DistillError(f"{what} labels the teacher does not know: {', '.join(unknown[:5])}"
                           + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""))
    return _prepare_task(examples, tokenizer, config, labels=list(labels))


def make_student(teacher: JointClassifier, layers: int, narrower: bool = False) -> tuple[JointClassifier, list[int]]:
    """The teacher with `layers` of its layers and a copy of its heads. All of its layers only when the
    student is to be `narrower` (its feed-forward blocks pruned after)."""
    n = int(teacher.encoder.config.num_hidden_layers)
    if layers > n or (layers == n and not narrower):
        raise DistillError(f"--layers {layers}: a student needs fewer layers than its teacher's {n}"
                           + ("" if layers > n else " (or a smaller --ffn-width)"))
    student = copy.deepcopy(teacher)
    try:
        kept = spread_layers(n, layers)
        if layers < n:
            student.encoder = shrink_encoder(teacher.encoder, kept)
    except ValueError as exc:
        raise DistillError(str(exc)) from None
    return student, kept


def narrow_student(student: JointClassifier, width: int, tokenizer, ids: list[list[int]], device: torch.device,
                   sample: int = 2048, batch_size: int = 64) -> None:
    """Prune the student's feed-forward blocks to `width` neurons, measured on (up to `sample` of) `ids`:
    the texts it is about to learn from, so the neurons those texts use are the ones kept."""
    from nlu.prune import neuron_importance, prune_feed_forward

    picked = sorted(random.Random(0).sample(ids, min(sample, len(ids))), key=len)
    batches = (_pad(tokenizer, picked[i : i + batch_size], device) for i in range(0, len(picked), batch_size))
    try:
        importance = neuron_importance(student.encoder, batches)
        prune_feed_forward(student.encoder, width, importance)
    except ValueError as exc:
        raise DistillError(f"--ffn-width {width}: {exc}") from None


def _soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at temperature T, times T² so its gradients keep their size (Hinton et al.)."""
    return nn.functional.kl_div(
        nn.functional.log_softmax(student_logits / temperature, -1),
        nn.functional.log_softmax(teacher_logits / temperature, -1),
        log_target=True, reduction="batchmean",
    ) * temperature**2


@dataclass
class _Targets:
    """Per text: token ids, the teacher's outputs, and gold labels (-100 where there is none)."""

    ids: list[list[int]]
    intent_logits: torch.Tensor
    sentiment_logits: torch.Tensor
    embeddings: torch.Tensor
    intent_gold: torch.Tensor
    sentiment_gold: torch.Tensor


_last_teacher_outputs: dict[tuple, tuple] = {}


def _teacher_outputs(teacher: JointClassifier, teacher_key: tuple, tokenizer, ids: list[list[int]],
                     device: torch.device) -> tuple:
    """The teacher's outputs on `ids`, remembered for the next student of the same teacher on the same texts
    (several students in one process, as the benchmark makes, pay for the teacher's pass once)."""
    key = (*teacher_key, len(ids), hash(tuple(map(tuple, ids))))
    if key not in _last_teacher_outputs:
        _last_teacher_outputs.clear()
        _last_teacher_outputs[key] = encode_all(teacher, tokenizer, ids, device)
    return _last_teacher_outputs[key]


def _targets(teacher: JointClassifier, teacher_key: tuple, tokenizer, intents: TaskData, sentiments: TaskData,
             extra_ids: list[list[int]], device: torch.device) -> _Targets:
    ids = intents.train_ids + sentiments.train_ids + extra_ids
    intent_logits, sentiment_logits, embeddings = _teacher_outputs(teacher, teacher_key, tokenizer, ids, device)
    n_i, n_s, n_x = len(intents.train_ids), len(sentiments.train_ids), len(extra_ids)
    none = [-100]
    return _Targets(
        ids=ids,
        intent_logits=torch.from_numpy(intent_logits).float(),
        sentiment_logits=torch.from_numpy(sentiment_logits).float(),
        embeddings=torch.from_numpy(embeddings).float(),
        intent_gold=torch.tensor(list(intents.train_y) + none * (n_s + n_x)),
        sentiment_gold=torch.tensor(none * n_i + list(sentiments.train_y) + none * n_x),
    )


def _optimizer(student: JointClassifier, config: DistillConfig) -> torch.optim.Optimizer:
    for param in student.encoder.embeddings.parameters():
        param.requires_grad_(False)
    encoder = [p for p in student.encoder.parameters() if p.requires_grad]
    heads = [p for n, p in student.named_parameters() if not n.startswith("encoder.")]
    return torch.optim.AdamW([{"params": encoder, "lr": config.lr, "weight_decay": 0.01},
                              {"params": heads, "lr": config.head_lr, "weight_decay": 0.0}])


def _train(student: JointClassifier, tokenizer, targets: _Targets, intents: TaskData, sentiments: TaskData,
           config: DistillConfig, sentiment_weight: float, device: torch.device,
           progress: TrainingProgress | None) -> tuple[list[dict], int]:
    """The distillation loop; keeps the weights with the best dev score (as training does)."""
    rng = random.Random(config.seed)
    lengths = [len(i) for i in targets.ids]
    steps_per_epoch = max(1, math.ceil(len(lengths) / config.batch_size))
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    optimizer = _optimizer(student, config)
    scheduler = warmup_then_decay(optimizer, total, 0.06)
    gold_loss = nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=0.1)
    best, step = BestOnDev(config.patience), 0
    history: list[dict] = []
    if progress:
        progress.start(total)
    for epoch in range(1, config.epochs + 1):
        student.train()
        for batch in _length_bucketed_batches(lengths, config.batch_size, rng):
            if step >= total:
                break
            input_ids, mask = _pad(tokenizer, [targets.ids[i] for i in batch], device)
            out = student(input_ids, mask)
            index = torch.tensor(batch)
            t_int, t_sent, t_emb = (targets.intent_logits[index].to(device), targets.sentiment_logits[index].to(device),
                                    targets.embeddings[index].to(device))
            g_int, g_sent = targets.intent_gold[index].to(device), targets.sentiment_gold[index].to(device)
            loss = (_soft_loss(out.intent_logits, t_int, config.temperature)
                    + sentiment_weight * _soft_loss(out.sentiment_logits, t_sent, config.temperature)
                    + config.embedding_weight * (1 - nn.functional.cosine_similarity(out.embeddings, t_emb)).mean())
            if (g_int >= 0).any():
                loss = loss + config.gold_weight * gold_loss(out.intent_logits, g_int)
            if (g_sent >= 0).any():
                loss = loss + config.gold_weight * sentiment_weight * gold_loss(out.sentiment_logits, g_sent)
            optimizer_step(student, loss, optimizer, scheduler)
            step += 1
            if progress:
                progress.advance(epoch, loss.item())
        scores = {**evaluate_dev(student, tokenizer, intents, sentiments, device), "epoch": epoch}
        history.append(scores)
        if progress:
            progress.epoch_done(epoch, scores)
        if best.update(student, epoch, scores["dev_score"]) or step >= total:
            break
    if progress:
        progress.stop()
    best.restore(student)
    return history, best.epoch


def distill(
    teacher_dir: str | Path,
    out_dir: str | Path,
    intent_examples: Sequence[Example],
    sentiment_examples: Sequence[Example],
    config: DistillConfig | None = None,
    *,
    texts: Sequence[str] = (),
    teacher: ModelBundle | None = None,
    progress: TrainingProgress | None = None,
    data: dict | None = None,
) -> FitResult:
    """Distil the teacher into a `config.layers`-layer student (feed-forward blocks pruned to
    `config.ffn_width` when set) written to `out_dir` as a model directory.

    `intent_examples` / `sentiment_examples`: the labelled data (normally the teacher's own, see
    `recorded_data`); `texts`: extra unlabelled texts; `teacher`: its bundle, when the caller has loaded it
    already. Raises DistillError for a teacher that cannot be read, a student no smaller than the teacher, or
    labels the teacher does not have.
    """
    config = config or DistillConfig()
    started = time.perf_counter()
    if config.layers < 1:
        raise DistillError(f"--layers {config.layers}: a student needs at least one layer")
    if Path(out_dir).resolve() == Path(teacher_dir).resolve():
        raise DistillError("--out must differ from --teacher: the student is a new directory")
    teacher = teacher or load_teacher(teacher_dir)
    if not intent_examples:
        raise DistillError("no intent examples to distil on")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    width = int(getattr(teacher.model.encoder.config, "intermediate_size", 0) or 0)
    if config.ffn_width is not None and not 1 <= config.ffn_width < width:
        raise DistillError(f"--ffn-width {config.ffn_width}: choose 1 to {width - 1} (the teacher's feed-forward "
                           f"blocks have {width} neurons)")
    student, kept = make_student(teacher.model, config.layers, narrower=config.ffn_width is not None)
    train_config = _student_train_config(teacher, config, len(kept))
    tokenizer = teacher.tokenizer
    intents = _task(intent_examples, teacher.intent_labels, tokenizer, train_config, "intent data has")
    sentiments = _task(sentiment_examples, teacher.sentiment_labels, tokenizer, train_config, "sentiment data has")
    extra = [t for t in texts if t]
    extra_ids = tokenizer(extra, truncation=True, max_length=teacher.max_length)["input_ids"] if extra else []
    targets = _teacher_targets(teacher, teacher_dir, tokenizer, intents, sentiments, extra_ids, device)
    student.to(device)
    if config.ffn_width is not None:
        narrow_student(student, config.ffn_width, tokenizer, targets.ids, device)
    history, best_epoch = _train(student, tokenizer, targets, intents, sentiments, config,
                                 train_config.sentiment_weight, device, progress)
    state = TrainedState(model=student, tokenizer=tokenizer, intents=intents, sentiments=sentiments, device=device,
                         history=history, best_epoch=best_epoch, seconds=time.perf_counter() - started)
    bundle = build_bundle(state, train_config)
    bundle.training_config.update(
        base_model=teacher.training_config.get("base_model"),
        distilled_from={"teacher": str(Path(teacher_dir).resolve()), "teacher_layers":
                        int(teacher.model.encoder.config.num_hidden_layers), "layers_kept": kept,
                        "teacher_ffn_width": width,
                        "unlabelled_texts": len(extra), "texts": len(targets.ids), **config.to_dict()},
    )
    return save_and_evaluate(bundle, state, out_dir, data=data)


def _teacher_targets(teacher: ModelBundle, teacher_dir: str | Path, tokenizer, intents: TaskData,
                     sentiments: TaskData, extra_ids: list[list[int]], device: torch.device) -> _Targets:
    """The teacher's outputs on every training text, computed on `device`; the teacher then goes back to the CPU."""
    teacher.model.to(device)
    weights = Path(teacher_dir) / "model.safetensors"
    teacher_key = (str(weights.resolve()), weights.stat().st_mtime_ns, str(device))
    targets = _targets(teacher.model, teacher_key, tokenizer, intents, sentiments, extra_ids, device)
    teacher.model.to("cpu")
    return targets


def _student_train_config(teacher: ModelBundle, config: DistillConfig, layers: int) -> TrainConfig:
    """The teacher's training settings, for the student: its split (seed, dev fraction) keeps the teacher's dev
    rows unseen; augmentation is distillation data."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    train_config = TrainConfig(**{k: v for k, v in teacher.training_config.items() if k in known})
    return dataclasses.replace(train_config, max_length=teacher.max_length, augment=True,
                               augment_copies=config.augment_copies, device=config.device,
                               layers=layers, max_steps=config.max_steps)
