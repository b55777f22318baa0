"""The joint intent + sentiment network: one encoder, two heads, one forward pass.

The encoder is any Hugging Face encoder (all-MiniLM-L6-v2 by default). Sentence
embeddings are mean-pooled token states, as the base model was trained to produce; both
heads read the same embedding, so a message costs a single encoder pass however many
questions we ask of it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel


def mean_pool(token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token states of real (non-padding) tokens."""
    mask = attention_mask.unsqueeze(-1).to(token_states.dtype)
    summed = (token_states * mask).sum(dim=1)
    return summed / mask.sum(dim=1).clamp(min=1e-9)


class CosineHead(nn.Module):
    """Scaled cosine similarity between the embedding and one learned vector per class.

    Normalising both sides makes the logits depend on direction only, which keeps the
    classes as tight clusters on the sphere; that is what makes nearest-neighbour
    out-of-scope detection in the same space work well.
    """

    def __init__(self, dim: int, n_classes: int, scale: float = 20.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, dim))
        nn.init.normal_(self.weight, std=0.02)
        self.scale = scale

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.scale * nn.functional.normalize(embeddings, dim=-1) @ nn.functional.normalize(
            self.weight, dim=-1
        ).T


@dataclass
class JointOutput:
    intent_logits: torch.Tensor
    sentiment_logits: torch.Tensor
    embeddings: torch.Tensor


class JointClassifier(nn.Module):
    """Encoder + mean pooling + an intent head and a sentiment head."""

    def __init__(
        self,
        encoder: PreTrainedModel,
        n_intents: int,
        n_sentiments: int,
        *,
        dropout: float = 0.1,
        head: str = "cosine",
        scale: float = 20.0,
    ):
        super().__init__()
        self.encoder = encoder
        dim = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head_kind = head
        if head == "cosine":
            self.intent_head: nn.Module = CosineHead(dim, n_intents, scale)
        elif head == "linear":
            self.intent_head = nn.Linear(dim, n_intents)
        else:
            raise ValueError(f"unknown head {head!r}; expected 'cosine' or 'linear'")
        self.sentiment_head = nn.Linear(dim, n_sentiments)

    @classmethod
    def from_base(cls, base_dir: str, n_intents: int, n_sentiments: int, **kwargs) -> JointClassifier:
        encoder = AutoModel.from_pretrained(base_dir)
        return cls(encoder, n_intents, n_sentiments, **kwargs)

    @classmethod
    def from_config(cls, model_dir: str, n_intents: int, n_sentiments: int, **kwargs) -> JointClassifier:
        """Build an untrained skeleton with the saved encoder's shape (weights are loaded after)."""
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(model_dir))
        return cls(encoder, n_intents, n_sentiments, **kwargs)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(states, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> JointOutput:
        embeddings = self.embed(input_ids, attention_mask)
        dropped = self.dropout(embeddings)
        return JointOutput(
            intent_logits=self.intent_head(dropped),
            sentiment_logits=self.sentiment_head(dropped),
            embeddings=embeddings,
        )

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights that are ours (not the encoder's), for `heads.safetensors`."""
        return {
            k: v.detach().cpu().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith("encoder.")
        }


_LAYER_KEY = re.compile(r"^(.*\blayers?\.)(\d+)(\..+)$")


def spread_layers(n_layers: int, keep: int) -> list[int]:
    """Which of `n_layers` layers a `keep`-layer copy takes: evenly spread, always the first and the last.

    The first layer turns token embeddings into contextual states and the last one is what the
    heads were trained on; the ones between are spread so each kept layer stands in for its neighbours
    (the usual initialisation of a layer-dropped student, as in DistilBERT's every-other-layer).
    """
    if not 1 <= keep <= n_layers:
        raise ValueError(f"cannot keep {keep} of {n_layers} transformer layers (choose 1 to {n_layers})")
    if keep == 1:
        return [n_layers - 1]
    return sorted({round(i * (n_layers - 1) / (keep - 1)) for i in range(keep)})


def shrink_encoder(encoder: PreTrainedModel, layers: list[int]) -> PreTrainedModel:
    """A copy of `encoder` with only the given transformer layers (in order), weights included.

    Works on any Hugging Face encoder whose layers are a numbered `layer.N` / `layers.N` list in
    its state dict (BERT, MiniLM, RoBERTa, DistilBERT, ...); raises ValueError naming the model
    type otherwise, rather than returning an untrained network.
    """
    config = copy.deepcopy(encoder.config)
    config.num_hidden_layers = len(layers)
    small = AutoModel.from_config(config)
    position = {old: new for new, old in enumerate(layers)}
    state: dict[str, torch.Tensor] = {}
    matched = False
    for key, value in encoder.state_dict().items():
        found = _LAYER_KEY.match(key)
        if not found:
            state[key] = value
            continue
        matched = True
        if int(found.group(2)) in position:
            state[f"{found.group(1)}{position[int(found.group(2))]}{found.group(3)}"] = value
    if not matched:
        raise ValueError(f"{type(encoder).__name__} has no numbered layer list to take layers from")
    missing, unexpected = small.load_state_dict(state, strict=False)
    real_missing = [k for k in missing if "position_ids" not in k]
    if real_missing or unexpected:
        raise ValueError(f"cannot copy layers of {type(encoder).__name__}: missing {real_missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    return small
