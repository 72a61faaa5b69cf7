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
from rich.table import Table

from avvp_lit.analysis.ablation import (
    DEFAULT_IGNORE,
    RESAMPLES,
    AblationReport,
    build_report,
    csv_text,
    diff_text,
    interval_text,
    markdown_text,
    mean_std_text,
)
from avvp_lit.metrics.functional import (
    LEVEL_TITLES,
    METRIC_NAMES,
    METRIC_TITLES,
    level_metrics,
    short_title,
)
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.utils.errors import InputError, add_debug_flag, run_cli

OUTPUT_NAMES: dict[str, str] = {"md": "ablation.md", "csv": "ablation.csv", "png": "ablation.png"}


def rich_tables(report: AblationReport) -> list[Table]:
    """The console view: one table per level (mean ± std, n, and the Δ of Type with its
    interval), then every Δ (``*`` where its interval excludes 0)."""
    ref = report.reference.label
    tables = []
    for level, title in LEVEL_TITLES.items():
        names = level_metrics(level)
        table = Table(title=f"{report.sweep_dir.name}: {title}, test F-score % (mean ± std)")
        table.add_column("variant", style="bold", no_wrap=True)
        table.add_column("n", justify="right", no_wrap=True)
        for name in names:
            table.add_column(short_title(name), justify="right", no_wrap=True)
        table.add_column(f"Δ Type vs {ref}", justify="right", no_wrap=True)
        table.add_column("95% interval", justify="right", no_wrap=True)
        for v in report.variants:
            n = f"{v.n}" + (f" ({len(v.failed)} failed)" if v.failed else "")
            cells = [mean_std_text(v, m) for m in names]
            type_name = f"{level}_type"
            interval = "" if v is report.reference else interval_text(v, type_name)
            table.add_row(v.label, n, *cells, diff_text(report, v, type_name), interval)
        tables.append(table)
    deltas = Table(title=f"Δ from {ref} (*: the 95% interval excludes 0)")
    deltas.add_column("variant", style="bold", no_wrap=True)
    for name in METRIC_NAMES:
        deltas.add_column(METRIC_TITLES[name], justify="right", no_wrap=True)
    for v in report.variants:
        deltas.add_row(v.label, *(diff_text(report, v, m) for m in METRIC_NAMES))
    return [*tables, deltas]


def write_report(
    report: AblationReport, out_dir: str | Path | None = None, *, dpi: int = 110
) -> dict[str, Path]:
    """Write ``ablation.md``, ``ablation.csv`` and ``ablation.png``; returns their paths."""
    from avvp_lit.viz.ablation import ablation_figure
    from avvp_lit.viz.figures import save_png

    out = Path(out_dir) if out_dir is not None else report.sweep_dir
    paths = {kind: out / name for kind, name in OUTPUT_NAMES.items()}
    atomic_write_bytes(paths["md"], markdown_text(report).encode())
    atomic_write_bytes(paths["csv"], csv_text(report).encode())
    save_png(ablation_figure(report), paths["png"], dpi=dpi)
    return paths


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
        paths = write_report(report, args.out, dpi=args.dpi)
        for table in rich_tables(report):
            console.print(table)
        console.print(report.method, highlight=False)
        for v in report.variants:
            if v.interval_problem:
                console.print(f"no interval for {v.label}: {v.interval_problem}", style="yellow")
        if report.failed:
            console.print(f"{len(report.failed)} failed or unfinished jobs:", style="red")
            for job in report.failed:
                console.print(f"  {job.name} ({report.own_overrides(job)}): {job.problem}")
        console.print("wrote " + ", ".join(str(p) for p in paths.values()), highlight=False)
        return 0

    return run_cli("avvp-report", body, None if argv is None else list(argv))


if __name__ == "__main__":
    raise SystemExit(main())
