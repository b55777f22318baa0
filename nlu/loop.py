"""What every training loop here shares: one clipped optimiser step, and keeping the best epoch on dev."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


def warmup_then_decay(optimizer, total_steps: int, warmup_ratio: float):
    """Learning rate rising linearly over the first `warmup_ratio` of the steps, then falling linearly to 0."""
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_step(model: nn.Module, loss: torch.Tensor, optimizer, scheduler) -> None:
    """One update: gradients clipped to norm 1 (a few long or mislabelled texts cannot blow a step up)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()


@dataclass
class BestOnDev:
    """The weights of the best epoch on dev so far, and early stopping once `patience` epochs bring no gain."""

    patience: int
    min_epochs: int = 1
    score: float = -1.0
    epoch: int = 0
    state: dict | None = None
    stale: int = 0

    def update(self, model: nn.Module, epoch: int, dev_score: float) -> bool:
        """Keep the weights if they beat the best; True when training should stop."""
        if dev_score > self.score + 1e-6 or self.state is None:
            self.score, self.epoch, self.stale = dev_score, epoch, 0
            self.state = copy.deepcopy(model.state_dict())
            return False
        self.stale += 1
        return epoch >= self.min_epochs and self.stale >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)
        model.eval()
