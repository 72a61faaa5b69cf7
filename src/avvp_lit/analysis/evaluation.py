"""Scoring predictions files under the protocol: what ``avvp-eval`` does.

A predictions file (``filenames`` and the four probability arrays, any video order) is
aligned to a split's annotation file, scored through the project's one scoring path
(:func:`avvp_lit.metrics.video_counts`) and reported as the ten numbers with the
protocol; two files are compared with the paired bootstrap over videos
(:mod:`avvp_lit.metrics.bootstrap`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from avvp_lit.classes import PREDICTION_KEYS
from avvp_lit.data.annotations import SplitAnnotations, load_split
from avvp_lit.metrics.bootstrap import PairedDifference, paired_bootstrap, resample_indices
from avvp_lit.metrics.functional import (
    dataset_scores,
    format_protocol,
    protocol_dict,
    resolve_thresholds,
    scores_from_counts,
    video_counts,
)
from avvp_lit.metrics.prediction_file import align_to_split, load_predictions
from avvp_lit.metrics.tables import comparison_table, results_table
from avvp_lit.metrics.video_scores import write_video_scores
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.utils.errors import InputError, one_line


class EvalInputError(InputError):
    """Bad command-line input; the message is printed as is."""


@dataclass(frozen=True)
class Protocol:
    """What predictions are scored against and how (docs/avvp.md §3)."""

    annotations: Path
    split: str = "test"
    gating: str = "global"
    audio_labels: str = "pre2024"
    video_threshold: float = 0.5
    segment_threshold: float = 0.5
    class_thresholds: Mapping[str, Sequence[float]] | None = None

    def settings(self) -> dict[str, Any]:
        """The metric settings (gating and thresholds), as ``metrics.*`` holds them."""
        return {
            "gating": self.gating,
            "video_threshold": self.video_threshold,
            "segment_threshold": self.segment_threshold,
            "class_thresholds": self.class_thresholds,
        }


def read_class_thresholds(path: Path | None) -> dict[str, list[float]] | None:
    """A per-class threshold file: YAML (or JSON) ``{video, audio, visual}`` lists of 25
    values, the mapping ``metrics.class_thresholds`` takes in training and parsing."""
    if path is None:
        return None
    from omegaconf import OmegaConf

    if not path.is_file():
        raise EvalInputError(f"{path}: class-threshold file not found")
    try:
        loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as error:  # any YAML syntax error
        raise EvalInputError(f"{path}: not a YAML mapping ({one_line(error, 160)})") from None
    if not isinstance(loaded, dict):
        raise EvalInputError(f"{path}: expected a mapping of video/audio/visual to 25 values")
    try:
        resolve_thresholds(class_thresholds=loaded)
    except (TypeError, ValueError) as error:
        raise EvalInputError(f"{path}: {error}") from None
    return loaded


def load_eval_split(protocol: Protocol) -> SplitAnnotations:
    split = load_split(protocol.annotations, protocol.split, audio_labels=protocol.audio_labels)
    if split.gt_audio is None or split.gt_visual is None:
        raise EvalInputError(f"split {protocol.split!r} has no dense labels to evaluate against")
    return split


def split_scores(
    path: Path, predictions: Mapping[str, np.ndarray], protocol: Protocol, split: SplitAnnotations
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Per-video scores (N, 10) of one loaded predictions file in split order, and the
    protocol record printed and saved with them."""
    order = align_to_split(path, predictions["filenames"], split.filenames)
    video, segment = resolve_thresholds(
        video_threshold=protocol.video_threshold,
        segment_threshold=protocol.segment_threshold,
        class_thresholds=protocol.class_thresholds,
    )
    counts = video_counts(
        *(torch.from_numpy(predictions[name][order]) for name in PREDICTION_KEYS),
        torch.from_numpy(split.gt_audio).transpose(1, 2),
        torch.from_numpy(split.gt_visual).transpose(1, 2),
        gating=protocol.gating,
        video_threshold=video,
        segment_threshold=segment,
    )
    record = protocol_dict(
        **protocol.settings(),
        split=protocol.split,
        audio_labels=protocol.audio_labels,
        annotation_files=split.files,
    )
    record["videos"] = len(order)
    return scores_from_counts(counts), record


def score_file(
    path: Path, protocol: Protocol, per_video: Path | None = None
) -> tuple[dict[str, float], dict[str, Any]]:
    """Load, validate and score one predictions file; the ten numbers and the protocol
    record. ``per_video``: also write the per-video scores there (TSV)."""
    predictions = load_predictions(path)
    split = load_eval_split(protocol)
    video_scores, record = split_scores(path, predictions, protocol, split)
    if per_video is not None:
        write_video_scores(per_video, 100.0 * video_scores.numpy(), split.filenames)
    return dataset_scores(video_scores), record


def compare_files(
    first: Path, second: Path, protocol: Protocol, *, resamples: int, seed: int
) -> tuple[PairedDifference, dict[str, Any]]:
    """B - A with the paired bootstrap over the split's videos (same protocol for both)."""
    loaded = [load_predictions(first), load_predictions(second)]
    split = load_eval_split(protocol)
    scores_a, record = split_scores(first, loaded[0], protocol, split)
    scores_b, _ = split_scores(second, loaded[1], protocol, split)
    indices = resample_indices(len(scores_a), resamples, seed)
    return paired_bootstrap(scores_a, scores_b, indices), record


def comparison_method(result: PairedDifference, seed: int) -> str:
    return (
        f"paired bootstrap: {result.resamples} resamples of the {result.videos} videos (seed "
        f"{seed}), the same videos for A and B; 95% interval: 2.5th-97.5th percentile of the "
        "resampled B - A; p: two-sided, share of resamples whose centred difference is at "
        "least |B - A|, (1 + k) / (1 + resamples)"
    )


def _write_json(path: Path | None, payload: Mapping[str, Any]) -> None:
    if path is not None:
        atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())


def report_file(
    path: Path,
    protocol: Protocol,
    *,
    console: Console,
    json_path: Path | None = None,
    per_video: Path | None = None,
) -> dict[str, float]:
    """Score one file, print its table and protocol line, write the JSON if asked."""
    results, record = score_file(path, protocol, per_video)
    console.print(results_table({path.name: results}, f"{protocol.split} split, F-score %"))
    console.print(format_protocol(record), soft_wrap=True, highlight=False)
    _write_json(json_path, {**results, "protocol": record})
    return results


def report_comparison(
    first: Path,
    second: Path,
    protocol: Protocol,
    *,
    resamples: int,
    seed: int,
    console: Console,
    json_path: Path | None = None,
) -> PairedDifference:
    """Compare two files, print the table, the method and the protocol, write the JSON."""
    start = time.perf_counter()
    result, record = compare_files(first, second, protocol, resamples=resamples, seed=seed)
    seconds = time.perf_counter() - start
    console.print(comparison_table(result))
    console.print(f"A = {first}, B = {second}", soft_wrap=True, highlight=False)
    console.print(comparison_method(result, seed), soft_wrap=True, highlight=False)
    console.print(format_protocol(record), soft_wrap=True, highlight=False)
    console.print(f"scored and resampled in {seconds:.2f} s", highlight=False)
    _write_json(
        json_path,
        {
            "a": str(first),
            "b": str(second),
            "metrics": result.as_dict(),
            "method": comparison_method(result, seed),
            "resamples": result.resamples,
            "seed": seed,
            "videos": result.videos,
            "protocol": record,
        },
    )
    return result
