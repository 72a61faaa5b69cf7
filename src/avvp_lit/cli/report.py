"""``avvp-report SWEEP_DIR``: the ablation table of a Hydra multirun
(:mod:`avvp_lit.analysis.ablation` computes it; this prints and writes it).

Outputs, written into the sweep directory (or ``--out``): ``ablation.md``,
``ablation.csv`` (one row per variant) and ``ablation.png``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from avvp_lit.analysis.ablation import (
    DEFAULT_IGNORE,
    RESAMPLES,
    build_report,
    print_report,
    write_report,
)
from avvp_lit.utils.errors import InputError, add_debug_flag, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avvp-report",
        description="Aggregate a Hydra multirun directory into an ablation table "
        "(ablation.md, ablation.csv, ablation.png).",
    )
    parser.add_argument("sweep_dir", type=Path, help="the multirun folder (job subfolders)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (the sweep dir)")
    parser.add_argument(
        "--reference", default=None, help="variant the Δ columns refer to (default: full)"
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=None,
        metavar="KEY",
        help="override key that does not define a variant (repeatable; default: seed)",
    )
    parser.add_argument(
        "--resamples", type=int, default=RESAMPLES, help="bootstrap resamples of each Δ"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--dpi", type=int, default=110)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = add_debug_flag(build_parser()).parse_args(argv)
    # a log or a pipe gets the whole table instead of 80 wrapped columns
    console = Console(width=None if sys.stdout.isatty() else 160)

    def body() -> int:
        if args.resamples < 1:
            raise InputError(f"--resamples {args.resamples}: must be at least 1")
        try:
            report = build_report(
                args.sweep_dir,
                reference=args.reference,
                ignore=tuple(args.ignore) if args.ignore else DEFAULT_IGNORE,
                resamples=args.resamples,
                bootstrap_seed=args.seed,
            )
        except KeyError as error:
            raise InputError(str(error.args[0]) if error.args else str(error)) from error
        print_report(report, write_report(report, args.out, dpi=args.dpi), console)
        return 0

    return run_cli("avvp-report", body, None if argv is None else list(argv))


if __name__ == "__main__":
    raise SystemExit(main())
