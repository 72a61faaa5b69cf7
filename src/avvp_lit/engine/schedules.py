"""Learning-rate schedules a recipe can choose (``scheduler=``) beyond torch's own."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def warmup_cosine_lr(
    epoch: int, *, max_lr: float, warmup_epochs: int, max_epochs: int, min_lr: float
) -> float:
    """VALOR's rule for epoch ``epoch`` (counted from 1): ``epoch / warmup_epochs · max_lr``
    while ``epoch < warmup_epochs``, then ``min_lr + (max_lr - min_lr) / 2 · (1 + cos(π ·
    (epoch - warmup_epochs) / (max_epochs - warmup_epochs)))`` (``max_lr`` at the first
    epoch of the cosine, ``min_lr`` at the last)."""
    if epoch < warmup_epochs:
        return epoch / warmup_epochs * max_lr
    progress = (epoch - warmup_epochs) / max(max_epochs - warmup_epochs, 1)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(progress * math.pi))


class WarmupCosine(LRScheduler):
    """:func:`warmup_cosine_lr` stepped once per epoch (Lightning ``interval: epoch``):
    the optimizer's lr of each group is ``max_lr``; the lr of the first epoch is set when
    the scheduler is built, as VALOR sets it at the start of every epoch."""

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        warmup_epochs: int,
        max_epochs: int,
        min_lr: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if warmup_epochs < 0 or max_epochs < 1:
            raise ValueError(f"warmup_epochs={warmup_epochs}, max_epochs={max_epochs}")
        self.warmup_epochs = warmup_epochs
        self.max_epochs = max_epochs
        self.min_lr = min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        epoch = self.last_epoch + 1  # last_epoch 0 is the first epoch
        return [
            warmup_cosine_lr(
                epoch,
                max_lr=base,
                warmup_epochs=self.warmup_epochs,
                max_epochs=self.max_epochs,
                min_lr=self.min_lr,
            )
            for base in self.base_lrs
        ]
