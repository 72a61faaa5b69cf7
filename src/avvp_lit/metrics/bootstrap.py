"""Paired bootstrap of the ten numbers: how sure is a difference between two predictors?

Every reported number is 100 times a mean over videos of a per-video score (Type@AV is
the mean of the A, V and AV means, hence also a mean of per-video values), so two
predictors scored on the same videos differ by the mean of per-video differences. The
paired bootstrap resamples videos with replacement, the same videos for both, and
reads the spread of that mean:

- the 95% interval is the 2.5th and 97.5th percentile of the resampled differences;
- the two-sided p-value is the share of resamples whose difference, centred on the
  observed one, is at least as far from it as the observed difference is from 0:
  ``(1 + #{|d* - d| >= |d|}) / (1 + R)`` (the bootstrap under the null of no
  difference, by shifting).

A resample is a row of counts (how often each video was drawn), so all ``R`` resampled
means are one matrix product: 10,000 resamples of 1,200 videos take well under a second.

Across seeds (:func:`two_level_bootstrap`, what ``avvp-report`` uses), a difference
between two variants has two sources of chance: which seeds were run and which videos
the test split holds. Seeds and videos are crossed (every seed is scored on the same
test videos), so each resample draws the seeds (with replacement, from the seeds both
variants finished) and one set of videos shared by all drawn seeds; the two variants
are paired on the same seed and the same videos. Drawing the videos anew for each seed
would average a video's own effect away over the seeds and make the interval too
narrow. With one seed only the video level is left, and the interval says nothing
about seed-to-seed spread; with few seeds the seed level is coarse (3 seeds allow 10
distinct draws).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from avvp_lit.metrics.functional import METRIC_NAMES

CONFIDENCE = 0.95


def resample_indices(videos: int, resamples: int, seed: int) -> torch.Tensor:
    """(R, N) video indices drawn with replacement; the same for a given seed."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(videos, (resamples, videos), generator=generator)


def resample_counts(indices: torch.Tensor) -> torch.Tensor:
    """(R, N) float64: how often each video occurs in each resample."""
    counts = torch.zeros(indices.shape, dtype=torch.float64)
    return counts.scatter_add_(1, indices, torch.ones_like(counts))


def percentile_interval(resampled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``CONFIDENCE`` percentile interval of resampled values (R, M): low, high (M,)."""
    tail = (1.0 - CONFIDENCE) / 2
    quantiles = torch.tensor([tail, 1.0 - tail], dtype=torch.float64)
    low, high = torch.quantile(resampled, quantiles, dim=0)
    return low, high


def excludes_zero(low: ArrayLike, high: ArrayLike) -> np.ndarray:
    """Where an interval [low, high] does not contain 0 (the difference is resolved)."""
    return (np.asarray(low) > 0) | (np.asarray(high) < 0)


@dataclass(frozen=True)
class PairedDifference:
    """B - A for each of the ten numbers (percent points), with its bootstrap spread."""

    a: np.ndarray  # (10,) the ten numbers of A
    b: np.ndarray  # (10,) of B
    delta: np.ndarray  # (10,) b - a
    low: np.ndarray  # (10,) lower end of the 95% interval of the difference
    high: np.ndarray  # (10,) upper end
    p_value: np.ndarray  # (10,) two-sided paired bootstrap p-value
    resamples: int
    videos: int

    def as_dict(self) -> dict[str, dict[str, float]]:
        fields = ("a", "b", "delta", "low", "high", "p_value")
        return {
            name: {f: float(getattr(self, f)[i]) for f in fields}
            for i, name in enumerate(METRIC_NAMES)
        }


def _type_columns(scores: torch.Tensor) -> torch.Tensor:
    """Per-video scores with Type@AV as the mean of the A, V, AV columns (as reported)."""
    scores = scores.clone()
    for start in (0, 5):
        scores[:, start + 3] = scores[:, start : start + 3].mean(1)
    return scores


def paired_bootstrap(
    scores_a: ArrayLike, scores_b: ArrayLike, indices: torch.Tensor
) -> PairedDifference:
    """The paired bootstrap of B - A from per-video scores (N, 10) in ``METRIC_NAMES``
    order (fractions, the same videos in the same order) over resamples ``indices``."""
    a = _type_columns(torch.as_tensor(np.asarray(scores_a), dtype=torch.float64))
    b = _type_columns(torch.as_tensor(np.asarray(scores_b), dtype=torch.float64))
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != len(METRIC_NAMES) or len(a) == 0:
        raise ValueError(f"expected two (N>0, 10) score arrays, got {a.shape} and {b.shape}")
    videos = len(a)
    difference = 100.0 * (b - a)  # (N, 10)
    observed = difference.mean(0)  # (10,)
    resampled = resample_counts(indices) @ difference / videos  # (R, 10)
    low, high = percentile_interval(resampled)
    extreme = ((resampled - observed).abs() >= observed.abs() - 1e-12).sum(0).double()
    p_value = (1.0 + extreme) / (1.0 + len(indices))
    return PairedDifference(
        a=(100.0 * a.mean(0)).numpy(),
        b=(100.0 * b.mean(0)).numpy(),
        delta=observed.numpy(),
        low=low.numpy(),
        high=high.numpy(),
        p_value=p_value.numpy(),
        resamples=len(indices),
        videos=videos,
    )


@dataclass(frozen=True)
class SeedVideoInterval:
    """B - A over paired seeds and videos (percent points), with its 95% interval."""

    delta: np.ndarray  # (10,) mean over seeds of the per-seed B - A
    low: np.ndarray  # (10,)
    high: np.ndarray  # (10,)
    seeds: int
    videos: int
    resamples: int

    @property
    def resolved(self) -> np.ndarray:
        """(10,) bool: the interval excludes 0."""
        return excludes_zero(self.low, self.high)


def two_level_bootstrap(
    scores_a: ArrayLike, scores_b: ArrayLike, *, resamples: int, seed: int
) -> SeedVideoInterval:
    """The two-level paired bootstrap of B - A from per-video scores (S, N, 10) of S
    paired seeds (fractions, ``METRIC_NAMES`` order, the same videos in the same order).

    Resample r draws S seeds ``k[r, j]`` and N videos with counts ``c[r]`` shared by the
    seeds; its difference is ``mean_j c[r] . d[k[r, j]] / N`` with ``d[s]`` the (N, 10)
    per-video differences of seed s. All of it is one (R, N) @ (N, S*10) product.
    """
    a = torch.as_tensor(np.asarray(scores_a), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(scores_b), dtype=torch.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != len(METRIC_NAMES) or 0 in a.shape:
        raise ValueError(f"expected two (S>0, N>0, 10) score arrays, got {a.shape} and {b.shape}")
    seeds, videos, metrics = a.shape
    difference = 100.0 * (_type_columns(b.flatten(0, 1)) - _type_columns(a.flatten(0, 1)))
    difference = difference.view(seeds, videos, metrics)  # (S, N, 10)
    per_video = difference.permute(1, 0, 2).reshape(videos, seeds * metrics)  # (N, S*10)
    generator = torch.Generator().manual_seed(seed)
    drawn_seeds = torch.randint(seeds, (resamples, seeds), generator=generator)  # (R, S)
    indices = torch.randint(videos, (resamples, videos), generator=generator)  # (R, N)
    means = (resample_counts(indices) @ per_video / videos).view(resamples, seeds, metrics)
    rows = torch.arange(resamples)[:, None]
    resampled = means[rows, drawn_seeds].mean(1)  # (R, S, 10) -> (R, 10)
    low, high = percentile_interval(resampled)
    return SeedVideoInterval(
        delta=difference.mean((0, 1)).numpy(),
        low=low.numpy(),
        high=high.numpy(),
        seeds=seeds,
        videos=videos,
        resamples=resamples,
    )


def two_level_method(resamples: int, seed: int) -> str:
    """The method line printed under ``avvp-report``'s table and in ``ablation.md``."""
    return (
        f"Δ intervals: two-level paired bootstrap, {resamples} resamples (seed {seed}); each "
        "resample draws the seeds both variants finished and the test videos (each with "
        "replacement; one video draw shared by the drawn seeds, as every seed is scored on "
        "the same videos), pairing the variants on seed and video; 95% interval: "
        "2.5th-97.5th percentile of the resampled Δ; `*`: the interval excludes 0. With one "
        "seed the interval covers the videos only."
    )
