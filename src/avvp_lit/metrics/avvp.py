"""``AVVPMetrics``: the AVVP protocol as a torchmetrics ``Metric``, exact under DDP.

The states are per-video count rows (see ``functional.avvp_counts``) and the video
index. Under DDP they are gathered whole, and ``compute()`` keeps one row per index,
so a video that ``DistributedSampler`` repeats to pad the last batch counts once and
the result equals a single-process run bit for bit (rows are ordered by index before
any floating-point reduction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from avvp_lit.classes import CLASSES, NUM_CLASSES, NUM_SEGMENTS, PREDICTION_KEYS
from avvp_lit.metrics.functional import (
    METRIC_NAMES,
    check_gating,
    class_f1,
    dataset_scores,
    protocol_dict,
    resolve_thresholds,
    scores_from_counts,
    video_counts,
)


@dataclass(frozen=True)
class AVVPDiagnostics:
    """What lies beneath the ten numbers.

    ``index`` (N,) the video indices, ascending, each once; ``video_scores`` (N, 10)
    per-video scores in percent, columns ``METRIC_NAMES``; ``class_f1`` maps
    ``seg_a``, ``seg_v``, ``seg_av``, ``evt_a``, ``evt_v``, ``evt_av`` to (25,) per-class
    F1 in percent with counts pooled over videos (NaN for a class neither predicted nor
    annotated), in ``CLASSES`` order.
    """

    index: np.ndarray
    video_scores: np.ndarray
    class_f1: dict[str, np.ndarray]
    classes: tuple[str, ...] = CLASSES
    metric_names: tuple[str, ...] = METRIC_NAMES

    def worst_videos(self, metric: str = "seg_type", k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` lowest-scoring videos on ``metric`` as (index, score) pairs."""
        column = self.video_scores[:, self.metric_names.index(metric)]
        order = np.argsort(column, kind="stable")[:k]
        return [(int(self.index[i]), float(column[i])) for i in order]


def first_rows_by_index(index: Tensor) -> Tensor:
    """Row positions keeping each distinct ``index`` once (its first row), by ascending index.

    Rows gathered from several processes repeat a video a DistributedSampler padded in;
    both copies carry the same values, so keeping the first makes the result equal a
    single-process run. index (N,) int -> positions (U,).
    """
    order = torch.sort(index, stable=True).indices
    sorted_index = index[order]
    first = torch.ones_like(sorted_index, dtype=torch.bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    return order[first]


class AVVPMetrics(Metric):
    """The ten AVVP numbers (percent) over all videos seen, each video counted once.

    ``update`` takes one batch of model outputs and labels: ``global_prob``, ``a_prob``,
    ``v_prob`` (B, 25); ``frame_prob`` (B, 10, 2, 25) (modality 0 audio, 1 visual);
    ``gt_audio``, ``gt_visual`` (B, 10, 25) binary, time-major as the data batches carry
    them; ``index`` (B,) int the position of each video in its split file.
    ``compute()`` returns ``{name: float}`` for ``METRIC_NAMES``;
    ``compute_diagnostics()`` the per-class and per-video detail.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    counts: list[Tensor]
    index: list[Tensor]

    def __init__(
        self,
        *,
        gating: str = "global",
        video_threshold: float = 0.5,
        segment_threshold: float = 0.5,
        class_thresholds: Mapping[str, Sequence[float]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_gating(gating)
        self.gating = gating
        self.video_threshold = float(video_threshold)
        self.segment_threshold = float(segment_threshold)
        self.class_thresholds = (
            None
            if class_thresholds is None
            else {key: tuple(float(x) for x in values) for key, values in class_thresholds.items()}
        )
        self._video_thr, self._segment_thr = resolve_thresholds(
            video_threshold=video_threshold,
            segment_threshold=segment_threshold,
            class_thresholds=class_thresholds,
        )
        # float64 thresholds per device, converted once (not buffers: precision casts buffers)
        self._thresholds: dict[torch.device, tuple[Tensor, Tensor]] = {}
        self.add_state("counts", default=[], dist_reduce_fx="cat")
        self.add_state("index", default=[], dist_reduce_fx="cat")

    @classmethod
    def from_arrays(
        cls,
        predictions: Mapping[str, np.ndarray],
        gt_audio: np.ndarray,
        gt_visual: np.ndarray,
        **settings: Any,
    ) -> AVVPMetrics:
        """A metric that has seen whole-split arrays in split order (predictions keyed by
        ``PREDICTION_KEYS``, time-major (N, 10, 25) labels). It never synchronises: the
        arrays are local (under DDP only rank 0 writes results)."""
        metric = cls(**settings, sync_on_compute=False)
        metric.update(
            **{k: torch.from_numpy(np.ascontiguousarray(predictions[k])) for k in PREDICTION_KEYS},
            gt_audio=torch.from_numpy(gt_audio),
            gt_visual=torch.from_numpy(gt_visual),
            index=torch.arange(len(gt_audio)),
        )
        return metric

    def _thresholds_on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """(video (K,), segment (2, K)) thresholds on ``device``."""
        if device not in self._thresholds:
            self._thresholds[device] = (
                torch.from_numpy(self._video_thr).to(device),
                torch.from_numpy(self._segment_thr).to(device),
            )
        return self._thresholds[device]

    def protocol(self, **extra: Any) -> dict[str, Any]:
        """``protocol_dict`` for this metric's settings; ``extra`` adds split, files, ..."""
        return protocol_dict(
            gating=self.gating,
            video_threshold=self.video_threshold,
            segment_threshold=self.segment_threshold,
            class_thresholds=self.class_thresholds,
            **extra,
        )

    def update(
        self,
        global_prob: Tensor,
        a_prob: Tensor,
        v_prob: Tensor,
        frame_prob: Tensor,
        gt_audio: Tensor,
        gt_visual: Tensor,
        index: Tensor,
    ) -> None:
        """Score one batch and keep its per-video count rows."""
        batch = len(index)
        _check_shape("global_prob", global_prob, (batch, NUM_CLASSES))
        _check_shape("a_prob", a_prob, (batch, NUM_CLASSES))
        _check_shape("v_prob", v_prob, (batch, NUM_CLASSES))
        _check_shape("frame_prob", frame_prob, (batch, NUM_SEGMENTS, 2, NUM_CLASSES))
        _check_shape("gt_audio", gt_audio, (batch, NUM_SEGMENTS, NUM_CLASSES))
        _check_shape("gt_visual", gt_visual, (batch, NUM_SEGMENTS, NUM_CLASSES))
        device = frame_prob.device
        video_thr, segment_thr = self._thresholds_on(device)
        counts = video_counts(
            global_prob.detach(),
            a_prob.detach(),
            v_prob.detach(),
            frame_prob.detach(),
            gt_audio.to(device).transpose(1, 2),
            gt_visual.to(device).transpose(1, 2),
            gating=self.gating,
            video_threshold=video_thr,
            segment_threshold=segment_thr,
        )
        self.counts.append(counts)
        self.index.append(torch.as_tensor(index, device=device).to(torch.int64).reshape(-1))

    def _unique_rows(self) -> tuple[Tensor, Tensor]:
        """Count rows and indices, one per video index, ordered by index.

        For a repeated index the first row in gathered order is kept (a padded repeat
        of the same video carries the same row). After a DDP sync the states are single
        gathered tensors rather than lists.
        """
        if isinstance(self.counts, list) and not self.counts:
            raise ValueError("AVVPMetrics has seen no videos: call update() before compute()")
        counts, index = dim_zero_cat(self.counts), dim_zero_cat(self.index)
        rows = first_rows_by_index(index)
        return counts[rows], index[rows]

    def compute(self) -> dict[str, float]:
        """The ten numbers, percent, keyed by ``METRIC_NAMES``."""
        counts, _ = self._unique_rows()
        return dataset_scores(scores_from_counts(counts))

    def compute_diagnostics(self) -> AVVPDiagnostics:
        """Per-video scores and per-class F1, synchronised across processes like compute()."""
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn,
            should_sync=self._to_sync,
            should_unsync=self._should_unsync,
        ):
            counts, index = self._unique_rows()
        return AVVPDiagnostics(
            index=index.cpu().numpy(),
            video_scores=100.0 * scores_from_counts(counts).cpu().numpy(),
            class_f1={key: 100.0 * value for key, value in class_f1(counts).items()},
        )


def _check_shape(name: str, value: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(value.shape) != expected:
        raise ValueError(
            f"AVVPMetrics.update: {name} has shape {tuple(value.shape)}, expected {expected}"
        )


__all__ = ["AVVPDiagnostics", "AVVPMetrics"]
