"""`avvp-pack ROOT OUT`: the released npy feature layout packed into one HDF5 file
(:mod:`avvp_lit.data.pack`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.data.pack import pack
from avvp_lit.data.stores import ON_MISSING
from avvp_lit.utils.errors import add_debug_flag, run_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="avvp-pack", description="Pack the released LLP npy feature layout into one HDF5 file."
    )
    parser.add_argument("root", type=Path, help="dataset folder with the released feature folders")
    parser.add_argument("out", type=Path, help="HDF5 file to write, e.g. ROOT/features.h5")
    parser.add_argument(
        "--features",
        choices=sorted(FEATURE_SETS),
        default=None,
        help="feature set (default: detected from the folders)",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted pack")
    parser.add_argument("--on-missing", choices=ON_MISSING, default="error")
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        path = pack(
            args.root,
            args.out,
            feature_set=args.features,
            resume=args.resume,
            on_missing=args.on_missing,
        )
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        return 0

    return run_cli("avvp-pack", body, argv)


if __name__ == "__main__":
    sys.exit(main())
