"""The figure of an ablation sweep (``ablation.png``), drawn from plain per-variant
numbers (:class:`VariantBars`) that :mod:`avvp_lit.analysis.ablation` computes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from avvp_lit.metrics.functional import LEVEL_TITLES, level_metrics, short_title


@dataclass(frozen=True)
class VariantBars:
    """One variant's bars: per metric name the mean and std over seeds, and the Δ from
    the reference with its interval bounds (NaN where there is none)."""

    label: str
    mean: Mapping[str, float]
    std: Mapping[str, float]
    delta: Mapping[str, float]
    low: Mapping[str, float]
    high: Mapping[str, float]
    has_interval: bool
    is_reference: bool


REFERENCE_COLOR = "#3b3b3b"


def _colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    if count <= 9:  # tab10 without its grey, which the reference row uses
        cmap = colormaps["tab10"]
        return [cmap(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)[:count]]
    cmap = colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def _variant_colors(is_reference: Sequence[bool]) -> list[Any]:
    """One colour per variant: the reference row dark grey, the others coloured."""
    others = iter(_colors(sum(not flag for flag in is_reference)))
    return [REFERENCE_COLOR if flag else next(others) for flag in is_reference]


def ablation_figure(variants: Sequence[VariantBars], *, title: str) -> Figure:
    """Grouped bars, one group per metric and one bar per variant.

    Left column: mean ± std over seeds (segment level on top, event level below).
    Right column: Δ from the reference with its 95% two-level bootstrap interval, where
    the small differences an ablation is about are visible; a hatched bar has no
    interval (Δ of the means).
    """
    count = len(variants)
    width = min(0.8 / max(count, 1), 0.25)
    fig = Figure(figsize=(16, 9.5), layout="constrained")
    axes = fig.subplots(2, 2, gridspec_kw={"width_ratios": [1.15, 1]})
    colors = _variant_colors([v.is_reference for v in variants])
    ref = next(v.label for v in variants if v.is_reference)
    for row, (level, level_title) in enumerate(LEVEL_TITLES.items()):
        names = level_metrics(level)
        x = np.arange(len(names))
        for i, v in enumerate(variants):
            offset = (i - (count - 1) / 2) * width
            means = [v.mean[n] for n in names]
            stds = [0.0 if math.isnan(v.std[n]) else v.std[n] for n in names]
            axes[row, 0].bar(
                x + offset, means, width, yerr=stds, color=colors[i], label=v.label,
                capsize=2, error_kw={"elinewidth": 0.8},
            )  # fmt: skip
            if v.is_reference:
                continue
            deltas = np.array([v.delta[n] for n in names])
            low, high = np.array([v.low[n] for n in names]), np.array([v.high[n] for n in names])
            errors = np.nan_to_num(np.stack([deltas - low, high - deltas]))
            axes[row, 1].bar(
                x + offset, deltas, width, yerr=errors, color=colors[i], capsize=2,
                error_kw={"elinewidth": 0.8}, hatch=None if v.has_interval else "//",
            )  # fmt: skip
        for col in (0, 1):
            ax = axes[row, col]
            ax.set_xticks(x)
            ax.set_xticklabels([short_title(n) for n in names], fontsize=11)
            ax.grid(axis="y", color="#dddddd", linewidth=0.6)
            ax.set_axisbelow(True)
        axes[row, 0].set_ylabel("F-score (%)")
        axes[row, 0].set_title(f"{level_title}: mean ± std over seeds")
        axes[row, 1].axhline(0, color="#333333", linewidth=0.9)
        axes[row, 1].set_ylabel(f"Δ F-score vs {ref} (points)")
        axes[row, 1].set_title(f"{level_title}: Δ from {ref}, 95% interval (seeds × videos)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(count, 5), frameon=False,
        fontsize=10,
    )  # fmt: skip
    fig.suptitle(title, fontsize=14)
    return fig


@dataclass(frozen=True)
class VariantCurve:
    """One variant's validation curves: ``scores[s][e]`` the model-selection score (val
    segment-level Type@AV, %) of seed ``s`` after epoch ``e + 1`` (seeds may stop at
    different epochs), ``tested[s]`` the 1-based epoch whose checkpoint seed ``s`` tested."""

    label: str
    scores: Sequence[Sequence[float]]
    tested: Sequence[int]
    is_reference: bool


def mean_curve(scores: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Per epoch, the mean over the seeds that trained that long, and how many did
    (seeds that stopped early leave the mean of the later epochs)."""
    longest = max((len(s) for s in scores), default=0)
    padded = np.full((len(scores), longest), np.nan)
    for i, seed_scores in enumerate(scores):
        padded[i, : len(seed_scores)] = seed_scores
    counts = np.sum(~np.isnan(padded), axis=0)
    sums = np.nansum(padded, axis=0)
    return sums / np.maximum(counts, 1), counts


def curves_figure(variants: Sequence[VariantCurve], *, title: str) -> Figure:
    """Validation Seg Type@AV by epoch, one line per variant (the mean over the seeds
    still training at that epoch; dotted where some seeds had stopped), with a marker at
    each seed's tested epoch: whether every variant reached its plateau is read here."""
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    ax = fig.subplots()
    colors = _variant_colors([v.is_reference for v in variants])
    for v, color in zip(variants, colors, strict=True):
        mean, counts = mean_curve(v.scores)
        if mean.size == 0:
            continue
        epochs = np.arange(1, mean.size + 1)
        full = counts == len(v.scores)
        ax.plot(epochs[full], mean[full], color=color, linewidth=1.8, label=v.label)
        ragged = np.flatnonzero(~full)
        if ragged.size:
            start = max(ragged[0] - 1, 0)
            ax.plot(epochs[start:], mean[start:], color=color, linewidth=1.2, linestyle=":")
        for seed_scores, epoch in zip(v.scores, v.tested, strict=True):
            if 1 <= epoch <= len(seed_scores):
                ax.plot(epoch, seed_scores[epoch - 1], "o", color=color, markersize=4, alpha=0.7)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation segment-level Type@AV (%)")
    ax.grid(color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="lower right", fontsize=9, ncols=2, frameon=False)
    ax.set_title(
        "mean over seeds (dotted: some seeds had stopped); dots: each seed's tested epoch",
        fontsize=10,
    )
    fig.suptitle(title, fontsize=13)
    return fig
