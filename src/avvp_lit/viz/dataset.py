"""Figures of a dataset's annotation statistics (notebook 01), from the dictionary
``avvp_lit.data.llp_stats.compute_llp_statistics`` returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from avvp_lit.classes import NUM_CLASSES, NUM_SEGMENTS
from avvp_lit.viz.figures import AUDIO_COLOR, AV_COLOR, VISUAL_COLOR, pretty

MODALITY_COLORS = {"audio": AUDIO_COLOR, "visual": VISUAL_COLOR, "audio-visual": AV_COLOR}


def class_count_figure(stats: Mapping[str, Any]) -> Figure:
    """Videos per class, train and eval, as share of the split (horizontal bars)."""
    order = np.argsort(stats["videos"]["train"]["class_counts"])[::-1]
    fig = Figure(figsize=(9, 8.5), layout="constrained")
    ax = fig.subplots()
    y = np.arange(NUM_CLASSES)
    for offset, split, color in ((-0.2, "train", "#4c72b0"), (0.2, "eval", "#dd8452")):
        videos = stats["videos"][split]
        share = 100 * np.asarray(videos["class_counts"])[order] / max(videos["videos"], 1)
        ax.barh(y + offset, share, height=0.4, color=color, label=f"{split} ({videos['videos']})")
    ax.set_yticks(y)
    ax.set_yticklabels([pretty(stats["classes"][k]) for k in order])
    ax.set_ylim(NUM_CLASSES - 0.5, -0.5)
    ax.set_xlabel("videos with the class (% of the split)")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="lower right")
    fig.suptitle("class frequency (weak labels)")
    return fig


def cooccurrence_figure(stats: Mapping[str, Any], split: str = "train") -> Figure:
    """How often two classes share a video (weak labels), as P(column | row) in %.

    The diagonal (a class with itself) is masked; rows are conditioned on the row class.
    """
    counts = np.asarray(stats["videos"][split]["cooccurrence"], dtype=np.float64)  # (25, 25)
    diagonal = np.diag(counts).copy()
    conditional = 100 * np.divide(
        counts, diagonal[:, None], out=np.zeros_like(counts), where=diagonal[:, None] > 0
    )
    np.fill_diagonal(conditional, np.nan)
    labels = [pretty(c) for c in stats["classes"]]
    fig = Figure(figsize=(10, 9), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(conditional, cmap="magma_r", interpolation="nearest")
    ax.set_xticks(np.arange(NUM_CLASSES))
    ax.set_yticks(np.arange(NUM_CLASSES))
    ax.set_xticklabels(labels, rotation=90, fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("co-occurring class")
    ax.set_ylabel("class")
    fig.colorbar(image, ax=ax, shrink=0.8, label="% of the row class's videos")
    fig.suptitle(f"class co-occurrence in a video ({split}, weak labels)")
    return fig


def modality_share_figure(stats: Mapping[str, Any]) -> Figure:
    """Per class, the shares of audio-only, visual-only and audio-visual events (eval)."""
    modality = np.asarray(stats["events"]["modality_counts"], dtype=np.float64)  # (25, 3)
    totals = modality.sum(1, keepdims=True)
    shares = 100 * np.divide(modality, totals, out=np.zeros_like(modality), where=totals > 0)
    order = np.argsort(shares[:, 2])
    fig = Figure(figsize=(9, 8.5), layout="constrained")
    ax = fig.subplots()
    left = np.zeros(NUM_CLASSES)
    for column, name in enumerate(("audio", "visual", "audio-visual")):
        values = shares[order, column]
        ax.barh(np.arange(NUM_CLASSES), values, left=left, color=MODALITY_COLORS[name],
                label=f"{name} only" if name != "audio-visual" else name)  # fmt: skip
        left += values
    ax.set_yticks(np.arange(NUM_CLASSES))
    ax.set_yticklabels(
        [f"{pretty(stats['classes'][k])} ({int(totals[k, 0])})" for k in order], fontsize=9
    )
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the class's events (%), eval split; (n events)")
    fig.legend(loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle("modality of events per class")
    return fig


def duration_figure(stats: Mapping[str, Any]) -> Figure:
    """Event durations and onsets (eval dense labels), audio and visual side by side."""
    events = stats["events"]
    fig = Figure(figsize=(12, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    seconds = np.arange(1, NUM_SEGMENTS + 1)
    for ax, key, title, x in (
        (axes[0], "duration_histogram", "total duration (s)", seconds),
        (axes[1], "onset_histogram", "first onset (s)", seconds - 1),
    ):
        for offset, modality in ((-0.2, "audio"), (0.2, "visual")):
            counts = np.asarray(events[key][modality], dtype=np.float64)
            ax.bar(x + offset, 100 * counts / max(counts.sum(), 1), width=0.4,
                   color=MODALITY_COLORS[modality], label=modality)  # fmt: skip
        ax.set_xlabel(title)
        ax.set_ylabel("% of events")
        ax.set_xticks(x)
    runs = events["runs_per_event"]
    for offset, modality in ((-0.2, "audio"), (0.2, "visual")):
        counts = np.asarray(runs[modality], dtype=np.float64)[1:]
        x = np.arange(1, len(counts) + 1)
        axes[2].bar(x + offset, 100 * counts / max(counts.sum(), 1), width=0.4,
                    color=MODALITY_COLORS[modality], label=modality)  # fmt: skip
    axes[2].set_xlabel("separate runs per event")
    axes[2].set_ylabel("% of events")
    axes[0].legend()
    fig.suptitle("event durations, onsets and fragmentation (eval split)")
    return fig
