"""Lightning callbacks that belong to no single model."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch


class EpochSeeding(L.Callback):
    """Re-seed every RNG at the start of each training epoch from (seed, epoch, rank).

    An epoch's randomness (dropout, augmentation) then depends only on the state at its
    start, so a run resumed from an end-of-epoch ``last.ckpt`` replays the interrupted
    epoch exactly and reaches the same final metrics as an uninterrupted run.
    """

    def __init__(self, *, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = (self.seed * 100_003 + trainer.current_epoch * 1_009 + trainer.global_rank) % 2**31
        random.seed(value)
        np.random.seed(value)  # noqa: NPY002 (the global state is what user code draws from)
        torch.manual_seed(value)
