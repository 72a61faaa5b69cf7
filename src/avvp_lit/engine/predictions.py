"""Collecting a split's predictions, DDP-safe (written by :mod:`avvp_lit.engine.results`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from avvp_lit.classes import PREDICTION_KEYS
from avvp_lit.metrics.avvp import first_rows_by_index


class PredictionCollector(Metric):
    """Keeps every video's probabilities keyed by its index in the split.

    ``compute()`` returns arrays in index order with each video once, so the padding a
    DistributedSampler adds (a video seen twice) does not duplicate rows.
    """

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("index", default=[], dist_reduce_fx="cat")
        for key in PREDICTION_KEYS:
            self.add_state(key, default=[], dist_reduce_fx="cat")

    def update(self, index: Tensor, **probabilities: Tensor) -> None:
        self.index.append(index.detach().long())
        for key in PREDICTION_KEYS:
            getattr(self, key).append(probabilities[key].detach().float())

    def compute(self) -> dict[str, np.ndarray]:
        index = dim_zero_cat(self.index).cpu()
        rows = first_rows_by_index(index)
        result = {"index": index[rows].numpy()}
        for key in PREDICTION_KEYS:
            result[key] = dim_zero_cat(getattr(self, key)).cpu()[rows].numpy()
        return result
