"""Collecting a split's predictions (DDP-safe) and writing them in the `avvp-eval` format."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from avvp_lit.metrics.avvp import first_rows_by_index
from avvp_lit.utils.atomic import atomic_write_bytes

PREDICTION_KEYS = ("global_prob", "a_prob", "v_prob", "frame_prob")


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


def write_predictions(path: Path, filenames: list[str], predictions: dict[str, np.ndarray]) -> None:
    """``predictions.npz`` in the `avvp-eval` format (``filenames`` + the four arrays)."""
    buffer = io.BytesIO()
    arrays = {key: predictions[key].astype(np.float32) for key in PREDICTION_KEYS}
    np.savez_compressed(buffer, filenames=np.asarray(filenames), **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def trivial_baselines(predictions: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Two reference predictors scored on the same split as the model.

    ``nothing``: no event anywhere. ``tiled``: the model's own video-level prediction
    copied to all ten seconds of both modalities — what a parser with no temporal
    ability scores.
    """
    frame = predictions["frame_prob"]
    nothing = {key: np.zeros_like(predictions[key]) for key in PREDICTION_KEYS}
    tiled = dict(predictions)
    tiled["frame_prob"] = np.broadcast_to(
        predictions["global_prob"][:, None, None, :], frame.shape
    ).copy()
    return {"predict nothing": nothing, "tiled video-level": tiled}
