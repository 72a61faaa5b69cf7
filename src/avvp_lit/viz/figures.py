"""Figures a researcher looks at after a run: parsing timelines, per-class F1, SECM maps.

Pure functions of numpy arrays that return ``matplotlib.figure.Figure`` objects built
without pyplot, so no global figure registry fills up during training and no backend
is switched; ``save_png`` renders with Agg and writes the file atomically. The same
figures are written into a run's ``figures/`` folder and logged to W&B.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from avvp_lit.classes import CLASSES, NUM_CLASSES, NUM_SEGMENTS
from avvp_lit.metrics.functional import LEVEL_TITLES
from avvp_lit.utils.atomic import atomic_write_bytes

AUDIO_COLOR = "#1f77b4"
VISUAL_COLOR = "#ff7f0e"
AV_COLOR = "#2ca02c"
F1_MODALITIES: tuple[tuple[str, str, str], ...] = (
    ("a", "audio", AUDIO_COLOR),
    ("v", "visual", VISUAL_COLOR),
    ("av", "audio-visual", AV_COLOR),
)
ATTENTION_SCALE = 4.0  # the colour scale reaches at least this many times uniform (1/K)
ATTENTION_TITLES: dict[str, str] = {
    "aa": "aa: audio queries, audio keys",
    "av": "av: audio queries, visual keys",
    "vv": "vv: visual queries, visual keys",
    "va": "va: visual queries, audio keys",
}


def pretty(name: str) -> str:
    """A class name as people read it: ``Frying_(food)`` becomes ``Frying (food)``."""
    return name.replace("_", " ")


def save_png(fig: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Render ``fig`` with Agg and write it to ``path`` atomically (parents created)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _shown_classes(*arrays: np.ndarray) -> np.ndarray:
    """Indices of the classes active anywhere in the (10, 25) arrays, in class order."""
    active = np.zeros(NUM_CLASSES, dtype=bool)
    for array in arrays:
        active |= np.asarray(array, dtype=bool).any(axis=0)
    return np.flatnonzero(active)


def _check_timeline(name: str, array: np.ndarray | None) -> None:
    if array is not None and np.shape(array) != (NUM_SEGMENTS, NUM_CLASSES):
        raise ValueError(
            f"{name} has shape {np.shape(array)}, expected ({NUM_SEGMENTS}, {NUM_CLASSES})"
        )


LANE_FLOOR, LANE_HEIGHT = 0.92, 0.84  # a lane's probability 0 and its span, in lane units
THRESHOLD_STYLE = {"color": "#222222", "linewidth": 0.8, "linestyle": "--"}


def _draw_lanes(
    ax,
    shown: np.ndarray,
    audio: np.ndarray,
    visual: np.ndarray,
    prob_audio: np.ndarray | None,
    prob_visual: np.ndarray | None,
    thresholds: np.ndarray | None = None,
) -> None:
    """One panel: per shown class an audio lane (upper) and a visual lane (lower).

    Lane ``2 r`` is row ``r``'s audio, ``2 r + 1`` its visual. Active seconds are solid
    bars filling the lane; a frame probability (if given) is a translucent area whose
    height within the lane is the probability, with the segment threshold of that
    class and modality (``thresholds`` (2, 25)) as a dashed line.
    """
    seconds_edges = np.arange(NUM_SEGMENTS + 1)
    for offset, active, prob, color in (
        (0, audio, prob_audio, AUDIO_COLOR),
        (1, visual, prob_visual, VISUAL_COLOR),
    ):
        if prob is not None:
            for row, klass in enumerate(shown):
                floor = 2 * row + offset + LANE_FLOOR
                top = floor - LANE_HEIGHT * np.append(prob[:, klass], prob[-1, klass])
                ax.fill_between(
                    seconds_edges, floor, top, step="post", color=color, alpha=0.3, linewidth=0
                )
                ax.step(seconds_edges, top, where="post", color=color, linewidth=0.8)
                if thresholds is not None:
                    level = floor - LANE_HEIGHT * thresholds[offset, klass]
                    ax.axhline(level, gid="threshold", **THRESHOLD_STYLE)
        rows, seconds = np.nonzero(np.asarray(active, dtype=bool)[:, shown].T)
        ax.barh(2 * rows + offset + 0.5, 1.0, left=seconds, height=0.84, color=color, linewidth=0)
    ax.set_xlim(0, NUM_SEGMENTS)
    ax.set_xticks(seconds_edges)
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", color="#cccccc", linewidth=0.6)
    ax.set_axisbelow(True)
    for row in range(len(shown)):
        ax.axhline(2 * row + 1, color="#bbbbbb", linewidth=0.6, linestyle=":")
        if row:
            ax.axhline(2 * row, color="#666666", linewidth=0.9)


def _probability_scale(ax, rows: int) -> None:
    """A right-hand axis reading each prediction lane's height as a probability."""
    scale = ax.twinx()
    scale.set_ylim(ax.get_ylim())
    ticks, labels = [], []
    for lane in range(2 * rows):
        floor = lane + LANE_FLOOR
        ticks += [floor, floor - LANE_HEIGHT / 2, floor - LANE_HEIGHT]
        labels += ["0", ".5", "1"]
    scale.set_yticks(ticks)
    scale.set_yticklabels(labels, fontsize=6)
    scale.tick_params(axis="y", length=2, pad=1)
    scale.set_ylabel("frame probability (per lane)", fontsize=8)
    scale.set_gid("probability scale")


def timeline_figure(
    filename: str,
    gt_audio: np.ndarray,
    gt_visual: np.ndarray,
    pred_audio: np.ndarray,
    pred_visual: np.ndarray,
    prob_audio: np.ndarray | None = None,
    prob_visual: np.ndarray | None = None,
    *,
    segment_threshold: float | np.ndarray = 0.5,
    title: str | None = None,
) -> Figure:
    """The parse of one video: ground truth (left) beside the prediction (right).

    Every array is (10, 25), time-major: ``gt_*`` and ``pred_*`` binary, ``prob_*`` the
    frame probabilities in [0, 1] drawn as shaded areas in the prediction lanes, read on
    the probability scale at the right, with the protocol's segment threshold (a scalar,
    or (2, 25) per modality and class) as a dashed line. Only the classes present in the
    ground truth or the prediction are shown, each with an audio and a visual lane; a
    second filled in both lanes is an audio-visual event.
    """
    arrays = {
        "gt_audio": gt_audio,
        "gt_visual": gt_visual,
        "pred_audio": pred_audio,
        "pred_visual": pred_visual,
        "prob_audio": prob_audio,
        "prob_visual": prob_visual,
    }
    for name, array in arrays.items():
        _check_timeline(name, array)
    thresholds = np.broadcast_to(np.asarray(segment_threshold, dtype=np.float64), (2, NUM_CLASSES))
    if not ((thresholds >= 0) & (thresholds <= 1)).all():
        raise ValueError("segment_threshold must lie in [0, 1]")
    probabilities = prob_audio is not None or prob_visual is not None
    shown = _shown_classes(gt_audio, gt_visual, pred_audio, pred_visual)
    height = 1.9 + 0.5 * max(len(shown), 1)
    fig = Figure(figsize=(11, height), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    panels = (
        ("ground truth", gt_audio, gt_visual, None, None),
        ("prediction", pred_audio, pred_visual, prob_audio, prob_visual),
    )
    for ax, (label, audio, visual, p_audio, p_visual) in zip(axes, panels, strict=True):
        lines = thresholds if p_audio is not None or p_visual is not None else None
        _draw_lanes(ax, shown, audio, visual, p_audio, p_visual, lines)
        ax.set_title(label)
    axes[0].set_ylim(2 * max(len(shown), 1), 0)
    if probabilities and len(shown):
        _probability_scale(axes[1], len(shown))
    axes[0].set_yticks(2 * np.arange(len(shown)) + 1.0)
    axes[0].set_yticklabels([pretty(CLASSES[k]) for k in shown])
    axes[0].tick_params(axis="y", length=0)
    if not len(shown):
        for ax in axes:
            ax.text(5, 1, "no event", ha="center", va="center", color="#666666")
    handles = [
        Patch(color=AUDIO_COLOR, label="audio (upper lane)"),
        Patch(color=VISUAL_COLOR, label="visual (lower lane)"),
    ]
    if probabilities:
        handles.append(Patch(color="#999999", alpha=0.4, label="frame probability (height)"))
        handles.append(Line2D([], [], label="segment threshold", **THRESHOLD_STYLE))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.suptitle(title or filename, fontsize=13)
    return fig


def class_f1_figure(
    class_f1: Mapping[str, np.ndarray],
    *,
    level: str = "seg",
    classes: Sequence[str] = CLASSES,
    title: str | None = None,
) -> Figure:
    """Per-class F1 (%) as grouped horizontal bars: audio, visual, audio-visual.

    ``class_f1`` maps ``{level}_a``, ``{level}_v``, ``{level}_av`` to (25,) arrays (the
    keys of ``AVVPDiagnostics.class_f1``); NaN (a class neither annotated nor predicted)
    is drawn as "n/a" rather than as a zero, and an F1 of 0 is labelled "0".
    """
    if level not in LEVEL_TITLES:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(LEVEL_TITLES)}")
    count = len(classes)
    fig = Figure(figsize=(9, 2.0 + 0.42 * count), layout="constrained")
    ax = fig.subplots()
    width = 0.27
    rows = np.arange(count)
    for position, (suffix, label, color) in enumerate(F1_MODALITIES):
        values = np.asarray(class_f1[f"{level}_{suffix}"], dtype=np.float64)
        if values.shape != (count,):
            raise ValueError(f"class_f1[{level}_{suffix!r}] has shape {values.shape}")
        y = rows + (position - 1) * width
        known = ~np.isnan(values)
        ax.barh(y[known], values[known], height=width, color=color, label=label)
        for row in np.flatnonzero(~known):
            ax.text(1, y[row], "n/a", va="center", fontsize=7, color="#777777")
        for row in np.flatnonzero(known & (values == 0)):  # a zero bar has no length to see
            ax.text(1, y[row], "0", va="center", fontsize=7, color=color, gid="zero")
    ax.set_yticks(rows)
    ax.set_yticklabels([pretty(name) for name in classes])
    ax.set_ylim(count - 0.5, -0.5)
    ax.set_xlim(0, 100)
    ax.set_xlabel("F1 (%)")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    fig.legend(loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle(title or f"per-class F1, {LEVEL_TITLES[level]}")
    return fig


def attention_figure(
    maps: Mapping[str, np.ndarray],
    *,
    classes: Sequence[str] = CLASSES,
    title: str = "SECM class co-occurrence attention",
) -> Figure:
    """The SECM attention maps ``aa``, ``av``, ``vv``, ``va`` as 2 x 2 heatmaps.

    Each map is (25, 25): rows are query classes, columns key classes, already averaged
    over videos and segments. All panels share one fixed colour scale, 0 to
    ``max(4 / K, largest weight)`` (uniform attention is 1 / K), stated in the figure:
    a map that differs from uniform by 1e-4 then looks uniform instead of being
    stretched to the full colour range.
    """
    labels = [pretty(name) for name in classes]
    count = len(classes)
    given = [np.asarray(maps[k], dtype=np.float64) for k in ATTENTION_TITLES if k in maps]
    top = max([ATTENTION_SCALE / count] + [float(np.max(v)) for v in given if v.size])
    fig = Figure(figsize=(17, 16), layout="constrained")
    axes = fig.subplots(2, 2)
    for ax, key in zip(axes.flat, ATTENTION_TITLES, strict=True):
        if key not in maps:
            ax.set_axis_off()
            ax.set_title(f"{key}: not provided")
            continue
        values = np.asarray(maps[key], dtype=np.float64)
        if values.shape != (count, count):
            raise ValueError(f"attention map {key!r} has shape {values.shape}")
        image = ax.imshow(values, cmap="viridis", interpolation="nearest", vmin=0.0, vmax=top)
        ax.set_xticks(np.arange(count))
        ax.set_yticks(np.arange(count))
        ax.set_xticklabels(labels, rotation=90, fontsize=7)
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_xlabel(f"key class ({'visual' if key in ('av', 'vv') else 'audio'})")
        ax.set_ylabel(f"query class ({'audio' if key[0] == 'a' else 'visual'})")
        ax.set_title(ATTENTION_TITLES[key])
        fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    scale = (
        f"colour scale fixed for all panels: 0 to {top:.3g} = max({ATTENTION_SCALE:g}/K, largest "
    )
    scale += f"weight); uniform attention is 1/K = {1 / count:.3g}"
    fig.suptitle(f"{title}\n{scale}", fontsize=14)
    return fig


def class_f1_figures(class_f1: Mapping[str, np.ndarray]) -> list[Figure]:
    """Per-class F1 bars at segment and event level (``avvp_lit.viz.figures``)."""
    return [class_f1_figure(class_f1, level=level) for level in ("seg", "evt")]
