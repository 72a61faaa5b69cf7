"""The logic behind the notebooks in ``notebooks/``, kept in the package so it is tested.

Every function takes paths or plain data and returns pandas frames, text or matplotlib
``Figure`` objects (built without pyplot, so nothing depends on a notebook backend);
the notebooks only choose inputs and display results.

- ``01_dataset.ipynb``: ``dataset_statistics`` (the annotation statistics of a dataset
  folder, as ``avvp_lit.data.llp_stats`` computes them) and the frames/figures below.
- ``02_run.ipynb``: ``load_run`` (one ``avvp-train`` run directory), ``metrics_frame``,
  ``run_class_f1``, ``run_timelines`` and ``run_attention``.
- ``03_ablation.ipynb``: :mod:`avvp_lit.analysis.ablation` (``display_frame``).

The figures themselves live in :mod:`avvp_lit.viz` (dataset figures in
:mod:`avvp_lit.viz.dataset`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from avvp_lit.classes import NUM_SEGMENTS
from avvp_lit.metrics.functional import CLASS_F1_KEYS, METRIC_NAMES, METRIC_TITLES, format_protocol
from avvp_lit.viz.figures import pretty

# --------------------------------------------------------------------------- 01: dataset


def dataset_statistics(root: str | Path, audio_labels: str = "pre2024") -> dict[str, Any]:
    """Annotation statistics of a dataset folder (the LLP CSVs; features not needed).

    The structure of ``avvp_lit.data.llp_stats.compute_llp_statistics``: video-level
    numbers for ``train`` and ``eval`` (val + test), event numbers from the eval split's
    dense labels.
    """
    from avvp_lit.data.llp_stats import compute_llp_statistics

    return compute_llp_statistics(Path(root), audio_labels)


def split_sizes_frame(stats: Mapping[str, Any]) -> pd.DataFrame:
    """Videos per split and the distribution of classes per video (columns 0, 1, 2, ...)."""
    rows = {}
    for split, videos in stats["videos"].items():
        hist = videos["classes_per_video"]
        rows[split] = {
            "videos": videos["videos"],
            **{f"{k} classes": n for k, n in enumerate(hist)},
        }
    return pd.DataFrame(rows).T.fillna(0).astype(int)


def class_frame(stats: Mapping[str, Any]) -> pd.DataFrame:
    """Per class: videos in train / eval, and (eval) audio-only, visual-only and
    audio-visual events with the audio-visual share; sorted by train frequency."""
    modality = np.asarray(stats["events"]["modality_counts"])  # (25, 3)
    events = modality.sum(1)
    frame = pd.DataFrame(
        {
            "train videos": stats["videos"]["train"]["class_counts"],
            "eval videos": stats["videos"]["eval"]["class_counts"],
            "audio only": modality[:, 0],
            "visual only": modality[:, 1],
            "audio-visual": modality[:, 2],
            "audio-visual share": np.divide(
                modality[:, 2], events, out=np.zeros(len(events)), where=events > 0
            ).round(3),
        },
        index=[pretty(c) for c in stats["classes"]],
    )
    return frame.sort_values("train videos", ascending=False)


def duration_frame(stats: Mapping[str, Any]) -> pd.DataFrame:
    """Events by total duration in seconds (1..10) per modality (eval dense labels)."""
    hist = stats["events"]["duration_histogram"]
    return pd.DataFrame(
        {m: hist[m] for m in hist}, index=pd.Index(range(1, NUM_SEGMENTS + 1), name="seconds")
    )


# --------------------------------------------------------------------------- 02: one run


@dataclass(frozen=True)
class RunView:
    """What ``avvp-train`` left in a run directory.

    ``metrics`` is metrics.json (ten numbers, ``protocol``, ``baselines``, ...);
    ``config`` the resolved config.yaml as a dict; ``data_root`` the dataset folder the
    run was tested on (resolved to an existing path when possible).
    """

    run_dir: Path
    metrics: dict[str, Any]
    config: dict[str, Any]
    data_root: Path

    @property
    def protocol(self) -> dict[str, Any]:
        return dict(self.metrics.get("protocol", {}))

    @property
    def checkpoint(self) -> Path | None:
        """The tested checkpoint (best val seg_type), else ``checkpoints/last.ckpt``."""
        for candidate in (self.metrics.get("checkpoint"), self.run_dir / "checkpoints/last.ckpt"):
            if candidate and Path(candidate).is_file():
                return Path(candidate)
        return None


def _find_data_root(value: str | Path, run_dir: Path) -> Path:
    """A relative ``data.root`` is relative to where the run was started: try the working
    directory, then the run directory and its parents (the repository holding outputs/)."""
    path = Path(value)
    if path.is_absolute():
        return path
    for base in (Path.cwd(), run_dir, *run_dir.resolve().parents):
        if (base / path).exists():
            return base / path
    return path


def load_run(run_dir: str | Path, data_root: str | Path | None = None) -> RunView:
    """Read metrics.json and config.yaml of ``run_dir``; ``data_root`` overrides the
    dataset folder recorded in the config."""
    import yaml

    run_dir = Path(run_dir)
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.json (failed or unfinished run?)")
    metrics = json.loads(metrics_file.read_text())
    config_file = run_dir / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    root = data_root if data_root is not None else config.get("data", {}).get("root")
    if root is None:
        raise ValueError(f"{run_dir}: no data.root in config.yaml; pass data_root")
    return RunView(run_dir, metrics, config, _find_data_root(root, run_dir))


def metrics_frame(run: RunView) -> pd.DataFrame:
    """The ten test numbers of the model and of the trivial baselines (rows)."""

    model = run.config.get("model", {}).get("name", "model")
    rows = {model: {n: run.metrics[n] for n in METRIC_NAMES}}
    rows.update(run.metrics.get("baselines", {}))
    frame = pd.DataFrame(rows).T[list(METRIC_NAMES)]
    return frame.rename(columns=METRIC_TITLES).round(2)


def protocol_text(run: RunView) -> str:
    return format_protocol(run.protocol)


def _test_split(run: RunView) -> Any:
    from avvp_lit.data.annotations import load_split

    audio_labels = run.protocol.get("audio_labels", "pre2024")
    return load_split(run.data_root, run.protocol.get("split", "test"), audio_labels)


def _predictions(run: RunView) -> dict[str, np.ndarray]:
    from avvp_lit.metrics.prediction_file import load_predictions

    return load_predictions(run.run_dir / "predictions.npz")


def run_class_f1(run: RunView) -> dict[str, np.ndarray]:
    """Per-class F1 (%) of the test split: ``seg_a`` ... ``evt_av`` -> (25,).

    Read from ``figures/test/class_f1.csv`` (the dashboard's) when present, otherwise
    recomputed from ``predictions.npz`` and the dataset's labels.
    """
    table = run.run_dir / "figures" / "test" / "class_f1.csv"
    if table.is_file():
        with table.open() as handle:
            rows = list(csv.DictReader(handle))
        return {
            key: np.array([float(r[key]) if r[key] else np.nan for r in rows])
            for key in CLASS_F1_KEYS
        }
    from avvp_lit.metrics import AVVPMetrics

    split = _test_split(run)
    settings = {k: run.protocol[k] for k in ("gating", "video_threshold", "segment_threshold")}
    settings["class_thresholds"] = run.protocol.get("class_thresholds")
    metric = AVVPMetrics.from_arrays(_predictions(run), split.gt_audio, split.gt_visual, **settings)
    return {key: np.asarray(metric.compute_diagnostics().class_f1[key]) for key in CLASS_F1_KEYS}


def _video_rows(filenames: Sequence[str], videos: Sequence[int | str]) -> list[int]:
    rows = []
    for video in videos:
        if isinstance(video, int):
            rows.append(video)
        elif video in filenames:
            rows.append(list(filenames).index(video))
        else:
            matches = [i for i, name in enumerate(filenames) if name.startswith(video)]
            if not matches:
                raise KeyError(f"video {video!r} is not in the test split")
            rows.append(matches[0])
    return rows


def run_timelines(run: RunView, videos: Sequence[int | str]) -> list[Figure]:
    """Parsing timelines (ground truth beside prediction) of chosen test videos.

    ``videos``: row numbers in the test split or (prefixes of) filenames. Predictions
    come from ``predictions.npz`` binarised under the run's own protocol.
    """
    from avvp_lit.inference import binarize_time_major, protocol_thresholds
    from avvp_lit.viz.figures import timeline_figure

    split = _test_split(run)
    predictions = _predictions(run)
    filenames = [str(f) for f in predictions["filenames"]]
    pred_audio, pred_visual = binarize_time_major(predictions, run.protocol)
    frame = predictions["frame_prob"]  # (N, 10, 2, 25)
    segment_threshold = protocol_thresholds(run.protocol)[1]
    figures = []
    for row in _video_rows(filenames, videos):
        figures.append(
            timeline_figure(
                filenames[row],
                split.gt_audio[row],
                split.gt_visual[row],
                pred_audio[row],
                pred_visual[row],
                frame[row, :, 0],
                frame[row, :, 1],
                segment_threshold=segment_threshold,
                title=f"{filenames[row]} (test video {row})",
            )
        )
    return figures


def run_attention(run: RunView, videos: Sequence[int | str]) -> Figure | None:
    """SECM co-occurrence maps of the tested checkpoint, averaged over the chosen test
    videos and their ten seconds; None for a network without class-token attention (HAN)
    or a run without a checkpoint."""
    from avvp_lit.inference import forward_eval, mean_attention, open_source, stack_videos
    from avvp_lit.models.loading import read_network
    from avvp_lit.viz.figures import attention_figure

    checkpoint = run.checkpoint
    if checkpoint is None:
        return None
    network = read_network(checkpoint).network
    feature_set = run.config.get("data", {}).get("feature_set")
    source = open_source(run.data_root, split="test", feature_set=feature_set)
    rows = _video_rows(source.filenames, videos)
    output = forward_eval(network, stack_videos([source.store.read(source.ids[r]) for r in rows]))
    maps = mean_attention(getattr(output, "attn_maps", None))
    if not maps:
        return None
    return attention_figure(
        maps,
        title=f"SECM co-occurrence attention (mean over {len(rows)} test videos x 10 s)",
    )


__all__ = [
    "RunView",
    "class_frame",
    "dataset_statistics",
    "duration_frame",
    "load_run",
    "metrics_frame",
    "protocol_text",
    "run_attention",
    "run_class_f1",
    "run_timelines",
    "split_sizes_frame",
]
