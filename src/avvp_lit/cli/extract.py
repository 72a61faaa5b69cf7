"""`avvp-extract INPUT... --out DIR`: video files to the ``valor`` feature set in the
released layout (:mod:`avvp_lit.extract.pipeline`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avvp_lit.utils.errors import EXIT_BAD_INPUT, add_debug_flag, run_cli
from avvp_lit.utils.memory import reuse_freed_memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="avvp-extract",
        description="Extract VALOR's features (CLIP, CLAP, R(2+1)D-18) from video files.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="video files or folders of them")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--features", choices=["valor"], default="valor")
    parser.add_argument(
        "--labels", type=Path, help="weak labels (AVVP_train.csv format): adds the pseudo labels"
    )
    parser.add_argument("--format", choices=["npy", "h5"], default="npy")
    parser.add_argument("--window", type=float, default=10.0, help="window length in seconds")
    parser.add_argument("--weights", type=Path, help="folder with the weight files")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--precision", choices=["32", "bf16-mixed"], default="32")
    parser.add_argument("--batch", type=int, default=4, help="windows per model batch")
    parser.add_argument("--workers", type=int, default=1, help="decoding worker processes")
    parser.add_argument("--resume", action="store_true", help="skip videos already extracted")
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    from avvp_lit.extract.weights import MissingWeights, use_offline_hub

    use_offline_hub(args.weights)
    reuse_freed_memory()

    def body() -> int:
        from avvp_lit.extract.pipeline import ExtractSettings, extract
        from avvp_lit.extract.report import print_summary

        settings = ExtractSettings(
            window_s=args.window,
            labels=args.labels,
            format=args.format,
            device=args.device,
            precision=args.precision,
            batch_windows=args.batch,
            workers=args.workers,
            resume=args.resume,
        )
        try:
            result = extract(args.inputs, args.out, settings, weights=args.weights)
        except MissingWeights as missing:
            for line in missing.lines:
                print(f"avvp-extract: missing weights: {line}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print_summary(result)
        return 0

    return run_cli("avvp-extract", body, argv)


if __name__ == "__main__":
    sys.exit(main())
