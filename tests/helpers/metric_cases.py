"""Random but structured inputs for the metric tests: interval-shaped labels and batches
of model outputs on a coarse probability grid."""

from __future__ import annotations

import numpy as np
import torch

from avvp_lit.classes import NUM_CLASSES as K
from avvp_lit.classes import NUM_SEGMENTS as T


def runs_case(rng: np.random.Generator, videos: int) -> np.ndarray:
    """Few active classes per video, each with 1-4 random intervals (overlaps merge)."""
    out = np.zeros((4, videos, K, T), dtype=np.int64)
    active = rng.random((4, videos, K)) < 0.2
    for stream, video, cls in zip(*np.nonzero(active), strict=True):
        for _ in range(rng.integers(1, 5)):
            start = rng.integers(0, T)
            out[stream, video, cls, start : start + rng.integers(1, T + 1)] = 1
    # AV overlap needs shared classes: copy some audio rows into visual.
    shared = rng.random((videos, K)) < 0.3
    out[1][shared] |= out[0][shared]
    out[3][shared] |= out[2][shared]
    return out


def make_batch(videos: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Model outputs on a 1/8 grid and time-major (B, 10, 25) ground truth, like a batch."""
    rng = np.random.default_rng(seed)

    def grid(*shape: int) -> torch.Tensor:
        return torch.from_numpy((rng.integers(0, 9, size=shape) / 8).astype(np.float32))

    gt = runs_case(rng, videos)[2:]  # (2, N, 25, 10) class-major
    return {
        "global_prob": grid(videos, K),
        "a_prob": grid(videos, K),
        "v_prob": grid(videos, K),
        "frame_prob": grid(videos, T, 2, K),
        "gt_audio": torch.from_numpy(gt[0]).transpose(1, 2).to(torch.uint8),
        "gt_visual": torch.from_numpy(gt[1]).transpose(1, 2).to(torch.uint8),
        "index": torch.arange(videos),
    }
