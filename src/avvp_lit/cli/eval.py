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
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from avvp_lit.analysis.evaluation import (
    EvalInputError,
    Protocol,
    read_class_thresholds,
    report_comparison,
    report_file,
)
from avvp_lit.data.annotations import AUDIO_LABEL_FILES
from avvp_lit.metrics.functional import GATINGS
from avvp_lit.utils.errors import add_debug_flag, run_cli


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


def main(argv: Sequence[str] | None = None) -> int:
    args = add_debug_flag(build_parser()).parse_args(argv)
    console = Console()

    def body() -> int:
        if args.compare and (args.predictions is not None or args.per_video is not None):
            raise EvalInputError("--compare takes the two files itself (no PRED.npz, --per-video)")
        if not args.compare and args.predictions is None:
            raise EvalInputError("give a predictions file, or --compare A.npz B.npz")
        protocol = Protocol(
            annotations=args.annotations,
            split=args.split,
            gating=args.gating,
            audio_labels=args.audio_labels,
            video_threshold=args.video_threshold,
            segment_threshold=args.segment_threshold,
            class_thresholds=read_class_thresholds(args.class_thresholds),
        )
        if args.compare:
            report_comparison(
                *args.compare,
                protocol,
                resamples=args.resamples,
                seed=args.seed,
                console=console,
                json_path=args.json,
            )
        else:
            report_file(
                args.predictions,
                protocol,
                console=console,
                json_path=args.json,
                per_video=args.per_video,
            )
        return 0

    return run_cli("avvp-eval", body, None if argv is None else list(argv))


if __name__ == "__main__":
    sys.exit(main())
