"""The figure of an ablation sweep (``ablation.png``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from avvp_lit.analysis.ablation import AblationReport
from avvp_lit.metrics.functional import LEVEL_TITLES, level_metrics, short_title


def _colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    if count <= 9:  # tab10 without its grey, which the reference row uses
        cmap = colormaps["tab10"]
        return [cmap(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)[:count]]
    cmap = colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def ablation_figure(report: AblationReport) -> Figure:
    """Grouped bars, one group per metric and one bar per variant.

    Left column: mean ± std over seeds (segment level on top, event level below).
    Right column: Δ from the reference with its 95% two-level bootstrap interval, where
    the small differences an ablation is about are visible; a hatched bar has no
    interval (Δ of the means).
    """
    variants = report.variants
    count = len(variants)
    width = min(0.8 / max(count, 1), 0.25)
    fig = Figure(figsize=(16, 9.5), layout="constrained")
    axes = fig.subplots(2, 2, gridspec_kw={"width_ratios": [1.15, 1]})
    others = iter(_colors(count - 1))  # the reference row in dark grey, the others coloured
    colors = ["#3b3b3b" if v is report.reference else next(others) for v in variants]
    ref = report.reference.label
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
            if v is report.reference:
                continue
            deltas = np.array([v.delta(n) for n in names])
            bounds = np.array([v.bounds(n) for n in names])  # (5, 2)
            errors = np.nan_to_num(np.stack([deltas - bounds[:, 0], bounds[:, 1] - deltas]))
            axes[row, 1].bar(
                x + offset, deltas, width, yerr=errors, color=colors[i], capsize=2,
                error_kw={"elinewidth": 0.8}, hatch=None if v.interval is not None else "//",
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
    seeds = sorted({v.n for v in variants})
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(count, 5), frameon=False,
        fontsize=10,
    )  # fmt: skip
    failed = len(report.failed)
    fig.suptitle(
        f"{report.sweep_dir.name}: {count} variants, {'/'.join(map(str, seeds))} seeds each"
        + (f", {failed} failed job{'s' * (failed > 1)} not included" if failed else ""),
        fontsize=14,
    )
    return fig
