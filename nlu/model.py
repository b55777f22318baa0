"""The joint intent + sentiment network: one encoder, two heads, one forward pass.

The encoder is any Hugging Face encoder (all-MiniLM-L6-v2 by default). Sentence
embeddings are mean-pooled token states, as the base model was trained to produce; both
heads read the same embedding, so a message costs a single encoder pass however many
questions we ask of it.
"""

from __future__ import annotations

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
