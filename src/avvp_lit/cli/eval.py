"""``avvp-eval``: score a predictions file against the LLP dense annotations.

``avvp-eval PRED.npz --annotations DIR [--split test] [--gating global|modality|mmcse]
[--audio-labels pre2024|current] [--json OUT]`` (also ``--video-threshold``,
``--segment-threshold``, ``--class-thresholds FILE`` and ``--per-video TSV`` for
per-video scores)

``avvp-eval --compare A.npz B.npz --annotations DIR [--resamples 10000] [--seed 0]``:
B - A for each of the ten numbers under one protocol, with a paired bootstrap 95%
interval over videos and a p-value (:mod:`avvp_lit.metrics.bootstrap`).

``PRED.npz`` holds ``filenames`` (N,) strings, ``global_prob``, ``a_prob``, ``v_prob``
(N, 25) and ``frame_prob`` (N, 10, 2, 25) (modality 0 audio, 1 visual), one row per
video of the split in any order. Bad input ends with a one-line error naming the file
and field, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from avvp_lit.classes import PREDICTION_SHAPES
from avvp_lit.data.annotations import AUDIO_LABEL_FILES, load_split
from avvp_lit.metrics.bootstrap import PairedDifference, paired_bootstrap, resample_indices
from avvp_lit.metrics.functional import (
    GATINGS,
    LEVELS,
    METRIC_NAMES,
    METRIC_TITLES,
    avvp_counts,
    binarize,
    dataset_scores,
    format_protocol,
    level_metrics,
    protocol_dict,
    resolve_thresholds,
    scores_from_counts,
)
from avvp_lit.metrics.prediction_file import align_to_split, load_predictions
from avvp_lit.metrics.video_scores import write_video_scores
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.utils.errors import InputError, add_debug_flag, one_line, run_cli

SHOWN = 5


class EvalInputError(InputError):
    """Bad command-line input; the message is printed as is."""


def results_table(results: dict[str, float], title: str) -> Table:
    """The ten numbers as a 2 x 5 table (levels x A, V, AV, Type@AV, Event@AV)."""
    table = Table(title=title)
    table.add_column("level")
    for header in ("A", "V", "AV", "Type@AV", "Event@AV"):
        table.add_column(header, justify="right")
    for level, label in zip(LEVELS, ("segment", "event"), strict=True):
        keys = level_metrics(level)
        table.add_row(label, *(f"{results[key]:.2f}" for key in keys))
    return table


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


def split_scores(
    path: Path,
    predictions: dict[str, np.ndarray],
    args: argparse.Namespace,
    split: Any,
    thresholds: dict[str, list[float]] | None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Per-video scores (N, 10) of one loaded predictions file in split order, and the
    protocol (``thresholds``: the per-class thresholds read from ``--class-thresholds``)."""
    order = align_to_split(path, predictions["filenames"], split.filenames)
    video, segment = resolve_thresholds(
        video_threshold=args.video_threshold,
        segment_threshold=args.segment_threshold,
        class_thresholds=thresholds,
    )
    pred_audio, pred_visual = binarize(
        *(torch.from_numpy(predictions[name][order]) for name in PREDICTION_SHAPES),
        gating=args.gating,
        video_threshold=video,
        segment_threshold=segment,
    )
    counts = avvp_counts(
        pred_audio,
        pred_visual,
        torch.from_numpy(split.gt_audio).transpose(1, 2),
        torch.from_numpy(split.gt_visual).transpose(1, 2),
    )
    protocol = protocol_dict(
        gating=args.gating,
        video_threshold=args.video_threshold,
        segment_threshold=args.segment_threshold,
        class_thresholds=thresholds,
        split=args.split,
        audio_labels=args.audio_labels,
        annotation_files=split.files,
    )
    protocol["videos"] = len(order)
    return scores_from_counts(counts), protocol


def load_eval_split(args: argparse.Namespace) -> Any:
    split = load_split(args.annotations, args.split, audio_labels=args.audio_labels)
    if split.gt_audio is None or split.gt_visual is None:
        raise EvalInputError(f"split {args.split!r} has no dense labels to evaluate against")
    return split


def evaluate_file(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, Any]]:
    """Load, validate and score; returns the ten numbers and the protocol."""
    predictions = load_predictions(args.predictions)
    split = load_eval_split(args)
    thresholds = read_class_thresholds(args.class_thresholds)
    video_scores, protocol = split_scores(args.predictions, predictions, args, split, thresholds)
    if args.per_video is not None:
        write_video_scores(args.per_video, 100.0 * video_scores.numpy(), split.filenames)
    return dataset_scores(video_scores), protocol


def compare_files(args: argparse.Namespace) -> tuple[PairedDifference, dict[str, Any]]:
    """B - A with the paired bootstrap over the split's videos (same protocol for both)."""
    first, second = args.compare
    loaded = [load_predictions(first), load_predictions(second)]
    split = load_eval_split(args)
    thresholds = read_class_thresholds(args.class_thresholds)
    scores_a, protocol = split_scores(first, loaded[0], args, split, thresholds)
    scores_b, _ = split_scores(second, loaded[1], args, split, thresholds)
    indices = resample_indices(len(scores_a), args.resamples, args.seed)
    return paired_bootstrap(scores_a, scores_b, indices), protocol


def comparison_table(result: PairedDifference) -> Table:
    """Ten rows (one per number): A, B, B - A, its 95% interval and p; fits 80 columns
    (the files are named under it)."""
    table = Table(title=f"B - A, paired bootstrap over {result.videos} videos (%)")
    table.add_column("metric", no_wrap=True)
    for header in ("A", "B", "B - A", "95% interval", "p"):
        table.add_column(header, justify="right", no_wrap=True)
    for i, name in enumerate(METRIC_NAMES):
        table.add_row(
            METRIC_TITLES[name],
            f"{result.a[i]:.2f}",
            f"{result.b[i]:.2f}",
            f"{result.delta[i]:+.2f}",
            f"[{result.low[i]:+.2f}, {result.high[i]:+.2f}]",
            f"{result.p_value[i]:.4f}",
        )
    return table


def comparison_method(result: PairedDifference, seed: int) -> str:
    return (
        f"paired bootstrap: {result.resamples} resamples of the {result.videos} videos (seed "
        f"{seed}), the same videos for A and B; 95% interval: 2.5th-97.5th percentile of the "
        "resampled B - A; p: two-sided, share of resamples whose centred difference is at "
        "least |B - A|, (1 + k) / (1 + resamples)"
    )


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avvp-eval",
        description="Score AVVP predictions (.npz) with the LLP evaluation protocol.",
    )
    parser.add_argument(
        "predictions", type=Path, nargs="?", help="PRED.npz: filenames and probabilities"
    )
    parser.add_argument(
        "--annotations", type=Path, required=True, help="folder of the LLP annotation files"
    )
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--gating", choices=GATINGS, default="global")
    parser.add_argument("--audio-labels", choices=tuple(AUDIO_LABEL_FILES), default="pre2024")
    parser.add_argument("--video-threshold", type=_probability, default=0.5)
    parser.add_argument("--segment-threshold", type=_probability, default=0.5)
    parser.add_argument(
        "--class-thresholds",
        type=Path,
        default=None,
        metavar="FILE",
        help="YAML {video, audio, visual}: 25 per-class thresholds each "
        "(the mapping metrics.class_thresholds takes)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.npz", "B.npz"),
        help="B - A for each number with a paired bootstrap 95%% interval and p-value",
    )
    parser.add_argument("--resamples", type=_positive, default=10_000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--per-video", type=Path, default=None, help="write per-video scores (TSV) here"
    )
    return parser


def _compare(args: argparse.Namespace, console: Console) -> int:
    if args.predictions is not None or args.per_video is not None:
        raise EvalInputError("--compare takes the two files itself (no PRED.npz, --per-video)")
    start = time.perf_counter()
    result, protocol = compare_files(args)
    seconds = time.perf_counter() - start
    console.print(comparison_table(result))
    console.print(f"A = {args.compare[0]}, B = {args.compare[1]}", soft_wrap=True, highlight=False)
    console.print(comparison_method(result, args.seed), soft_wrap=True, highlight=False)
    console.print(format_protocol(protocol), soft_wrap=True, highlight=False)
    console.print(f"scored and resampled in {seconds:.2f} s", highlight=False)
    if args.json is not None:
        payload = {
            "a": str(args.compare[0]),
            "b": str(args.compare[1]),
            "metrics": result.as_dict(),
            "method": comparison_method(result, args.seed),
            "resamples": result.resamples,
            "seed": args.seed,
            "videos": result.videos,
            "protocol": protocol,
        }
        atomic_write_bytes(args.json, (json.dumps(payload, indent=2) + "\n").encode())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = add_debug_flag(build_parser()).parse_args(argv)
    console = Console()

    def body() -> int:
        if args.compare:
            return _compare(args, console)
        if args.predictions is None:
            raise EvalInputError("give a predictions file, or --compare A.npz B.npz")
        results, protocol = evaluate_file(args)
        console.print(results_table(results, f"AVVP {args.split} ({len(METRIC_NAMES)} scores, %)"))
        console.print(format_protocol(protocol), soft_wrap=True, highlight=False)
        if args.json is not None:
            payload = {**results, "protocol": protocol}
            atomic_write_bytes(args.json, (json.dumps(payload, indent=2) + "\n").encode())
        return 0

    return run_cli("avvp-eval", body, None if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
