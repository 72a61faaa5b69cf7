"""The figures render to non-empty PNGs, show the right classes and never touch pyplot."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from avvp_lit.classes import CLASS_INDEX, CLASSES
from avvp_lit.viz import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_ok(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_MAGIC) and len(data) > 5_000


def _timeline_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    gt_audio = np.zeros((10, 25))
    gt_visual = np.zeros((10, 25))
    gt_audio[0:4, CLASS_INDEX["Speech"]] = 1
    gt_visual[:, CLASS_INDEX["Dog"]] = 1
    prob_audio = 0.3 * rng.random((10, 25))
    prob_visual = 0.3 * rng.random((10, 25))
    prob_audio[0:5, CLASS_INDEX["Speech"]] = 0.8
    prob_visual[3:6, CLASS_INDEX["Cello"]] = 0.7
    return {
        "gt_audio": gt_audio,
        "gt_visual": gt_visual,
        "pred_audio": prob_audio >= 0.5,
        "pred_visual": prob_visual >= 0.5,
        "prob_audio": prob_audio,
        "prob_visual": prob_visual,
    }


def test_timeline_shows_gt_and_predicted_classes_only(tmp_path: Path) -> None:
    fig = figures.timeline_figure("-abcDEF_123_30_40", **_timeline_arrays())
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["Speech", "Dog", "Cello"]
    assert fig.get_suptitle() == "-abcDEF_123_30_40"
    path = figures.save_png(fig, tmp_path / "sub" / "timeline.png")
    assert _png_ok(path)
    assert not list(path.parent.glob(".*tmp*"))


def test_timeline_probability_scale_and_threshold_lines() -> None:
    arrays = _timeline_arrays()
    thresholds = np.full((2, 25), 0.5)
    thresholds[1, CLASS_INDEX["Cello"]] = 0.25  # a per-class visual threshold
    fig = figures.timeline_figure("v", **arrays, segment_threshold=thresholds)
    ground_truth, prediction, scale = fig.axes
    lines = [line for line in prediction.get_lines() if line.get_gid() == "threshold"]
    assert not [line for line in ground_truth.get_lines() if line.get_gid() == "threshold"]
    # one per lane: Speech, Dog, Cello x audio, visual; lane floor 0.92, height 0.84
    floors = [lane + 0.92 for lane in range(6)]
    expected = [f - 0.84 * 0.5 for f in floors[:5]] + [floors[5] - 0.84 * 0.25]
    drawn = [line.get_ydata()[0] for line in lines]
    assert sorted(drawn) == pytest.approx(sorted(expected))
    assert scale.get_gid() == "probability scale"
    assert [t.get_text() for t in scale.get_yticklabels()][:3] == ["0", ".5", "1"]
    assert scale.get_ylim() == prediction.get_ylim()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "segment threshold" in legend
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        figures.timeline_figure("v", **arrays, segment_threshold=1.5)


def test_timeline_without_events_and_bad_shapes(tmp_path: Path) -> None:
    zeros = np.zeros((10, 25))
    fig = figures.timeline_figure("silent", zeros, zeros, zeros, zeros)
    assert _png_ok(figures.save_png(fig, tmp_path / "empty.png"))
    with pytest.raises(ValueError, match=r"gt_audio has shape \(25, 10\)"):
        figures.timeline_figure("x", zeros.T, zeros, zeros, zeros)


def test_class_f1_bars_mark_missing_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    class_f1 = {
        f"{level}_{m}": 100 * rng.random(25) for level in ("seg", "evt") for m in ("a", "v", "av")
    }
    class_f1["seg_av"][3] = np.nan
    class_f1["seg_a"][7] = 0.0
    fig = figures.class_f1_figure(class_f1, level="seg")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [figures.pretty(c) for c in CLASSES]
    assert len(ax.patches) == 3 * 25 - 1
    assert sorted(t.get_text() for t in ax.texts) == ["0", "n/a"]
    (zero,) = [t for t in ax.texts if t.get_gid() == "zero"]
    assert zero.get_position()[1] == pytest.approx(7 - 0.27)  # the audio bar of class 7
    assert _png_ok(figures.save_png(fig, tmp_path / "f1.png"))
    with pytest.raises(ValueError, match="unknown level"):
        figures.class_f1_figure(class_f1, level="frame")


def test_attention_heatmaps_have_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    maps = {key: rng.random((25, 25)) for key in ("aa", "av", "vv", "va")}
    fig = figures.attention_figure(maps)
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert len(heatmaps) == 4
    for ax in heatmaps:
        assert [t.get_text() for t in ax.get_xticklabels()] == [figures.pretty(c) for c in CLASSES]
        assert [t.get_text() for t in ax.get_yticklabels()] == [figures.pretty(c) for c in CLASSES]
        assert ax.images[0].get_clim() == (0.0, pytest.approx(max(maps[k].max() for k in maps)))
    assert _png_ok(figures.save_png(fig, tmp_path / "attention.png"))


def test_nearly_uniform_attention_keeps_a_fixed_colour_scale() -> None:
    """Weights within 1e-4 of uniform (1/25) are not stretched over the colour range."""
    rng = np.random.default_rng(3)
    maps = {key: 0.04 + 1e-4 * rng.standard_normal((25, 25)) for key in ("aa", "vv")}
    fig = figures.attention_figure(maps)
    for ax in (ax for ax in fig.axes if ax.images):
        assert ax.images[0].get_clim() == (0.0, pytest.approx(4 / 25))
    assert "0 to 0.16 = max(4/K, largest weight)" in fig.get_suptitle()
    assert "uniform attention is 1/K = 0.04" in fig.get_suptitle()


def test_no_pyplot_state() -> None:
    figures.timeline_figure("x", *(np.zeros((10, 25)),) * 4)
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert pyplot is None or not pyplot.get_fignums()
