"""`avvp-data`: dataset folder tools.

``avvp-data check ROOT [--json OUT]`` validates a dataset folder and reports its quirks
(:func:`avvp_lit.data.check.run_check`); exit status 2 when features are missing,
unreadable or invalid, or splits share videos. ``avvp-data stats ROOT OUT`` writes the
label statistics of an annotation folder as JSON (what the synthetic generator draws
from, :func:`avvp_lit.data.llp_stats.compute_llp_statistics`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from avvp_lit.data.annotations import AUDIO_LABEL_FILES
from avvp_lit.data.check import run_check
from avvp_lit.data.llp_stats import write_llp_statistics
from avvp_lit.utils.errors import EXIT_BAD_INPUT, add_debug_flag, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avvp-data", description="LLP dataset folder tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a dataset folder and report its quirks")
    check.add_argument("root", type=Path)
    check.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    add_debug_flag(check)
    stats = commands.add_parser("stats", help="label statistics of an annotation folder (JSON)")
    stats.add_argument("root", type=Path, help="folder with the released LLP annotation files")
    stats.add_argument("out", type=Path, help="JSON file to write")
    stats.add_argument("--audio-labels", choices=sorted(AUDIO_LABEL_FILES), default="pre2024")
    add_debug_flag(stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        if args.command == "stats":
            print(write_llp_statistics(args.root, args.out, args.audio_labels))
            return 0
        problems = run_check(
            args.root, console=Console(), json_path=args.json, progress=not args.quiet
        )
        if problems:
            print(f"avvp-data: error: {args.root}: {'; '.join(problems)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return 0

    return run_cli("avvp-data", body, argv)


if __name__ == "__main__":
    sys.exit(main())
