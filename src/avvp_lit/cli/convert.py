"""`avvp-convert IN OUT --arch mmcse|han|valor`: a released checkpoint of the original code as an
avvp-lit network file (:mod:`avvp_lit.models.convert`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avvp_lit.models.convert import ARCHS, NORMS, convert_checkpoint, save_network_file
from avvp_lit.utils.errors import add_debug_flag, run_cli


def main(argv: list[str] | None = None) -> int:
    """``avvp-convert IN OUT --arch mmcse|han|valor``: a released checkpoint -> a network file."""
    parser = argparse.ArgumentParser(
        prog="avvp-convert",
        description="Convert a released MM-CSE / HAN / VALOR checkpoint into an avvp-lit "
        "network file.",
    )
    parser.add_argument(
        "input",
        type=Path,
        help="checkpoint_best.pth (MM-CSE), MMIL_Net.pt (HAN) or checkpoint_best.pt (VALOR)",
    )
    parser.add_argument("output", type=Path, help="network file to write")
    parser.add_argument("--arch", choices=ARCHS, required=True)
    parser.add_argument(
        "--num-heads",
        type=int,
        default=None,
        help="attention heads (default: 8 MM-CSE, VALOR; 1 HAN)",
    )
    parser.add_argument(
        "--norm-where",
        choices=NORMS,
        default="post_norm",
        help="VALOR's layer norm placement (post_norm: VALOR++'s script)",
    )
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        network, config = convert_checkpoint(args.input, args.arch, args.num_heads, args.norm_where)
        save_network_file(args.output, network, config, args.arch)
        params = sum(p.numel() for p in network.parameters())
        summary = f"{args.arch}, {config['feature_set']} features, {params:,} parameters"
        print(f"avvp-convert: {args.input} ({summary}) -> {args.output}")
        return 0

    return run_cli("avvp-convert", body, argv)


if __name__ == "__main__":
    sys.exit(main())
