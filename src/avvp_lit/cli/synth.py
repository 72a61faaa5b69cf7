"""`avvp-synth OUT [--features valor|han] [--size ...] [--seed N]`: the built-in synthetic
LLP dataset (:mod:`avvp_lit.data.synthetic`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.data.synthetic import SIZES, SyntheticKnobs, generate
from avvp_lit.utils.errors import InputError, add_debug_flag, run_cli


def build_parser() -> argparse.ArgumentParser:
    defaults = SyntheticKnobs()
    parser = argparse.ArgumentParser(
        prog="avvp-synth",
        description="Generate the built-in synthetic LLP dataset (annotations + features).",
    )
    parser.add_argument("out", type=Path, help="dataset folder to create")
    parser.add_argument("--features", choices=sorted(FEATURE_SETS), default="valor")
    parser.add_argument(
        "--size",
        choices=list(SIZES),
        default="default",
        help=", ".join(f"{k}: {'/'.join(map(str, v.values()))}" for k, v in SIZES.items()),
    )
    parser.add_argument("--seed", type=int, default=0)
    for f in fields(SyntheticKnobs):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=float,
            default=getattr(defaults, f.name),
            help=f"(default {getattr(defaults, f.name)})",
        )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = add_debug_flag(build_parser()).parse_args(argv)

    def body() -> int:
        try:
            knobs = SyntheticKnobs(
                **{f.name: getattr(args, f.name) for f in fields(SyntheticKnobs)}
            )
            generate(
                args.out,
                features=args.features,
                size=args.size,
                seed=args.seed,
                knobs=knobs,
                progress=not args.quiet,
                overwrite=args.overwrite,
            )
        except ValueError as error:
            raise InputError(str(error)) from error
        return 0

    return run_cli("avvp-synth", body, None if argv is None else list(argv))


if __name__ == "__main__":
    raise SystemExit(main())
