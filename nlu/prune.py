"""Structured pruning of the feed-forward blocks: narrower layers, same directory format.

A transformer layer of the base model spends two thirds of its arithmetic on short texts in its
feed-forward block (384 -> 1536 -> 384 for MiniLM), so halving that block's width takes about a third
off every layer's cost. Which hidden neurons go is measured, not guessed: a neuron whose activation is
small on real customer texts, or whose outgoing weights are small, moves the layer's output little when
removed. The pruned encoder is an ordinary Hugging Face model with a smaller `intermediate_size`, so it
saves, loads, exports to ONNX and serves like any other; `nlu.distill` then trains it back towards the
teacher's answers.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from transformers import PreTrainedModel


def feed_forward_blocks(encoder: PreTrainedModel) -> list[tuple[nn.Linear, nn.Linear]]:
    """(input projection, output projection) of every layer's feed-forward block, in order.

    BERT-style encoders (BERT, MiniLM, RoBERTa) name them `layer.N.intermediate.dense` and
    `layer.N.output.dense`; others raise ValueError naming the model type, rather than being left unpruned.
    """
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    blocks = []
    for layer in layers or []:
        inner = getattr(getattr(layer, "intermediate", None), "dense", None)
        outer = getattr(getattr(layer, "output", None), "dense", None)
        if not (isinstance(inner, nn.Linear) and isinstance(outer, nn.Linear)):
            break
        blocks.append((inner, outer))
    if not blocks or len(blocks) != len(layers):
        raise ValueError(f"{type(encoder).__name__} has no BERT-style feed-forward blocks to prune")
    return blocks


@torch.inference_mode()
def neuron_importance(encoder: PreTrainedModel,
                      batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """Per layer, per hidden neuron of the feed-forward block: its mean absolute activation over real
    (non-padding) tokens of `batches` (input ids, attention mask), times the norm of its outgoing weights:
    how far the block's output moves on these texts without it."""
    blocks = feed_forward_blocks(encoder)
    sums = [torch.zeros(inner.out_features) for inner, _ in blocks]
    mask: list[torch.Tensor] = []  # the batch being run, for the hooks

    def recorder(index: int):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
            # `intermediate` returns the activated projection: what the output projection reads.
            real = mask[0].unsqueeze(-1).to(output.dtype)
            sums[index] += (output.abs() * real).sum(dim=(0, 1)).float().cpu()
        return hook

    layers = encoder.encoder.layer
    hooks = [layers[i].intermediate.register_forward_hook(recorder(i)) for i in range(len(blocks))]
    tokens = 0
    was_training = encoder.training
    encoder.eval()
    try:
        for input_ids, attention_mask in batches:
            mask[:] = [attention_mask]
            encoder(input_ids=input_ids, attention_mask=attention_mask)
            tokens += int(attention_mask.sum())
    finally:
        for handle in hooks:
            handle.remove()
        encoder.train(was_training)
    if tokens == 0:
        raise ValueError("no texts to measure the feed-forward neurons on")
    return [total / tokens * outer.weight.detach().float().cpu().norm(dim=0) for total, (_, outer) in
            zip(sums, blocks, strict=True)]


def prune_feed_forward(encoder: PreTrainedModel, width: int, importance: list[torch.Tensor]) -> list[list[int]]:
    """Keep the `width` most important hidden neurons of every feed-forward block, in place; returns the kept
    indices per layer. The config's `intermediate_size` follows, so the encoder saves and loads as a standard
    model of that width."""
    blocks = feed_forward_blocks(encoder)
    current = int(encoder.config.intermediate_size)
    if not 1 <= width < current:
        raise ValueError(f"feed-forward width {width}: choose 1 to {current - 1} (the blocks have {current})")
    kept_per_layer = []
    for (inner, outer), scores in zip(blocks, importance, strict=True):
        kept = torch.topk(scores, width).indices.sort().values
        kept_per_layer.append(kept.tolist())
        _narrow(inner, kept, rows=True)
        _narrow(outer, kept, rows=False)
    encoder.config.intermediate_size = width
    return kept_per_layer


def _narrow(linear: nn.Linear, kept: torch.Tensor, rows: bool) -> None:
    """Cut `linear` to the kept output features (rows) or input features (columns), weights kept."""
    with torch.no_grad():
        weight = linear.weight[kept] if rows else linear.weight[:, kept]
        linear.weight = nn.Parameter(weight.clone().contiguous())
        if rows and linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias[kept].clone())
    if rows:
        linear.out_features = len(kept)
    else:
        linear.in_features = len(kept)
