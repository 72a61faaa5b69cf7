"""`avvp-report SWEEP_DIR`: the ablation table of a Hydra multirun, honestly aggregated.

A sweep directory (local, or copied from a cluster) holds one folder per job, each with
``.hydra/overrides.yaml`` (the job's command-line overrides) and, when the job finished,
``metrics.json`` (the ten test numbers written by ``avvp-train``). Jobs are grouped into
*variants* by their overrides minus the seed (``--ignore`` adds keys), and each variant
becomes one row: the ten metrics as mean ± sample standard deviation over its seeds
(``ddof=1``; undefined with one seed), the difference of the means from the reference
variant (``full`` when present), and the number of seeds that finished. Jobs without a
readable ``metrics.json`` are listed by name with the reason and counted per variant;
they never enter a mean, and a variant none of whose jobs finished still gets its row.

Outputs, written into the sweep directory (or ``--out``): ``ablation.md``,
``ablation.csv`` (one row per variant) and ``ablation.png`` (grouped bars with error
bars). The table is also printed with rich.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from avvp_lit.metrics.functional import (
    LEVEL_TITLES,
    METRIC_NAMES,
    METRIC_TITLES,
    format_protocol,
    level_metrics,
    short_title,
)
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.utils.errors import InputError, add_debug_flag, run_cli

DEFAULT_IGNORE: tuple[str, ...] = ("seed",)
REFERENCE_LABEL = "full"
VARIANT_KEY = "variant"
OUTPUT_NAMES: dict[str, str] = {"md": "ablation.md", "csv": "ablation.csv", "png": "ablation.png"}
# |Δ| above this many standard errors of the difference is marked in the tables.
SE_MARK = 2.0


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    """One job of a sweep: ``name`` its folder relative to the sweep directory.

    ``metrics`` maps the ten ``METRIC_NAMES`` to floats, or is None when the job has
    no usable ``metrics.json`` (``problem`` says why). ``protocol`` is the evaluation
    protocol recorded beside the numbers.
    """

    name: str
    overrides: tuple[str, ...]
    metrics: dict[str, float] | None
    protocol: dict[str, Any] | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.metrics is not None


def override_key(override: str) -> str:
    """The config key an override sets: ``+a.b=1`` -> ``a.b``; ``~loss.terms.x`` -> itself."""
    text = override.lstrip("+")
    if text.startswith("~"):
        return text
    return text.split("=", 1)[0]


def override_value(override: str) -> str:
    return override.split("=", 1)[1] if "=" in override else ""


def _natural_key(name: str) -> list[Any]:
    """Sort ``2`` before ``10`` (Hydra numbers its job folders)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _read_metrics(path: Path) -> tuple[dict[str, float] | None, dict[str, Any] | None, str | None]:
    if not path.is_file():
        return None, None, "no metrics.json (failed or unfinished)"
    try:
        payload = json.loads(path.read_text())
        metrics = {name: float(payload[name]) for name in METRIC_NAMES}
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, None, f"unreadable metrics.json ({type(error).__name__}: {error})"
    protocol = payload.get("protocol")
    return metrics, protocol if isinstance(protocol, dict) else None, None


def find_runs(sweep_dir: str | Path) -> list[Run]:
    """Every job folder under ``sweep_dir`` (any depth), in natural name order.

    A job folder is one holding ``.hydra/overrides.yaml``; ``sweep_dir`` itself counts
    when it is a single run directory.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    runs = []
    for overrides_file in root.rglob(".hydra/overrides.yaml"):
        folder = overrides_file.parent.parent
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        metrics, protocol, problem = _read_metrics(folder / "metrics.json")
        name = folder.relative_to(root).as_posix()
        runs.append(
            Run(
                name=name,
                overrides=tuple(str(o) for o in overrides),
                metrics=metrics,
                protocol=protocol,
                problem=problem,
            )
        )
    return sorted(runs, key=lambda run: _natural_key(run.name))


# --------------------------------------------------------------------------- variants


@dataclass
class Variant:
    """The jobs sharing every override but the ignored ones (the seeds).

    ``mean``/``std`` map metric names to floats over the finished jobs (NaN when there
    are none; ``std`` NaN with fewer than two); ``diff`` is ``mean - reference mean``.
    """

    label: str
    overrides: tuple[str, ...]
    runs: list[Run] = field(default_factory=list)
    seed_overrides: list[tuple[str, ...]] = field(default_factory=list)
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    diff: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> list[Run]:
        return [run for run in self.runs if run.ok]

    @property
    def failed(self) -> list[Run]:
        return [run for run in self.runs if not run.ok]

    @property
    def n(self) -> int:
        return len(self.finished)

    @property
    def seeds(self) -> list[str]:
        """The ignored overrides' values of the finished jobs, e.g. ``["1", "2", "3"]``."""
        return [
            ",".join(override_value(o) for o in seeds)
            for run, seeds in zip(self.runs, self.seed_overrides, strict=True)
            if run.ok
        ]

    def compute(self) -> None:
        values = np.array([[run.metrics[m] for m in METRIC_NAMES] for run in self.finished])
        for i, name in enumerate(METRIC_NAMES):
            column = values[:, i] if len(values) else np.empty(0)
            self.mean[name] = float(column.mean()) if len(column) else math.nan
            self.std[name] = float(column.std(ddof=1)) if len(column) > 1 else math.nan


def diff_se(variant: Variant, reference: Variant, metric: str) -> float:
    """Standard error of ``mean(variant) - mean(reference)``: sqrt(s1²/n1 + s2²/n2)."""
    if variant is reference:
        return math.nan
    parts = [(v.std[metric], v.n) for v in (variant, reference)]
    if any(n < 2 or math.isnan(s) for s, n in parts):
        return math.nan
    return math.sqrt(sum(s * s / n for s, n in parts))


def _short(override: str) -> str:
    """``loss.terms.cooccurrence.weight=0.05`` -> ``cooccurrence.weight=0.05``."""
    key = override_key(override)
    if key.startswith("~") or "." not in key:
        return override
    return ".".join(key.split(".")[-2:]) + "=" + override_value(override)


def _labels(groups: Sequence[tuple[str, ...]], shared: set[str]) -> list[str]:
    """Readable, unique labels: the ``variant=`` value, else the differing overrides."""

    def label(overrides: tuple[str, ...], shorten: bool) -> str:
        own = [o for o in overrides if o not in shared]
        named = [override_value(o) for o in own if override_key(o) == VARIANT_KEY]
        rest = [(_short(o) if shorten else o) for o in own if override_key(o) != VARIANT_KEY]
        return " ".join([*named, *rest]) or "(defaults)"

    labels = [label(g, shorten=True) for g in groups]
    if len(set(labels)) < len(labels):
        labels = [label(g, shorten=False) for g in groups]
    return labels


@dataclass
class Report:
    """A sweep's variants in job order, the reference row and the shared overrides."""

    sweep_dir: Path
    variants: list[Variant]
    reference: Variant
    shared: tuple[str, ...]
    ignored: tuple[str, ...]
    protocols: list[dict[str, Any]]

    @property
    def failed(self) -> list[Run]:
        return [run for variant in self.variants for run in variant.failed]

    def own_overrides(self, run: Run) -> str:
        """A run's overrides without those every variant shares (what tells it apart)."""
        return " ".join(o for o in run.overrides if o not in self.shared)

    def variant(self, label: str) -> Variant:
        for variant in self.variants:
            if variant.label == label:
                return variant
        raise KeyError(f"no variant {label!r}; variants: {[v.label for v in self.variants]}")


def build_report(
    sweep_dir: str | Path,
    *,
    reference: str | None = None,
    ignore: Iterable[str] = DEFAULT_IGNORE,
) -> Report:
    """Group the jobs of ``sweep_dir`` into variants and aggregate them.

    ``reference`` is the label of the row differences are taken from; by default
    ``full`` when a variant has that label, else the first variant in job order.
    """
    runs = find_runs(sweep_dir)
    if not runs:
        raise FileNotFoundError(f"no job folders (.hydra/overrides.yaml) under {sweep_dir}")
    ignored = tuple(ignore)
    groups: dict[tuple[str, ...], list[tuple[Run, tuple[str, ...]]]] = {}
    for run in runs:
        kept = tuple(sorted(o for o in run.overrides if override_key(o) not in ignored))
        seeds = tuple(o for o in run.overrides if override_key(o) in ignored)
        groups.setdefault(kept, []).append((run, seeds))
    keys = list(groups)
    shared = set.intersection(*(set(k) for k in keys)) if len(keys) > 1 else set()
    variants = []
    for key, label in zip(keys, _labels(keys, shared), strict=True):
        members = groups[key]
        variant = Variant(
            label=label,
            overrides=tuple(o for o in key if o not in shared),
            runs=[run for run, _ in members],
            seed_overrides=[seeds for _, seeds in members],
        )
        variant.compute()
        variants.append(variant)
    chosen = _reference(variants, reference)
    for variant in variants:
        variant.diff = {m: variant.mean[m] - chosen.mean[m] for m in METRIC_NAMES}
    protocols = []
    for run in runs:
        if run.protocol is not None and run.protocol not in protocols:
            protocols.append(run.protocol)
    return Report(
        sweep_dir=Path(sweep_dir),
        variants=variants,
        reference=chosen,
        shared=tuple(sorted(shared)),
        ignored=ignored,
        protocols=protocols,
    )


def _reference(variants: list[Variant], label: str | None) -> Variant:
    labels = [v.label for v in variants]
    if label is not None:
        if label not in labels:
            raise KeyError(f"reference {label!r} is not a variant; variants: {labels}")
        return variants[labels.index(label)]
    if REFERENCE_LABEL in labels:
        return variants[labels.index(REFERENCE_LABEL)]
    return variants[0]


# --------------------------------------------------------------------------- tables


def _number(value: float, digits: int = 2, signed: bool = False) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _mean_std(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return _number(mean) if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def mean_std_text(variant: Variant, metric: str) -> str:
    """``45.12 ± 1.03``; ``45.12`` with one seed; ``–`` with none."""
    return _mean_std(variant.mean[metric], variant.std[metric])


def diff_text(report: Report, variant: Variant, metric: str) -> str:
    """``-1.20`` (``*`` appended when |Δ| exceeds ``SE_MARK`` standard errors)."""
    if variant is report.reference:
        return "ref"
    value = variant.diff[metric]
    se = diff_se(variant, report.reference, metric)
    mark = "*" if not math.isnan(se) and abs(value) > SE_MARK * se else ""
    return _number(value, signed=True) + mark


def csv_text(report: Report) -> str:
    """One row per variant: label, overrides, seeds, failures, mean/std/diff per metric."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["variant", "overrides", "n_seeds", "seeds", "n_failed", "failed_runs"]
    for name in METRIC_NAMES:
        header += [f"{name}_mean", f"{name}_std", f"{name}_diff"]
    writer.writerow(header)
    for v in report.variants:
        row: list[Any] = [
            v.label,
            " ".join(v.overrides),
            v.n,
            " ".join(v.seeds),
            len(v.failed),
            " ".join(run.name for run in v.failed),
        ]
        for name in METRIC_NAMES:
            row += [_csv_float(v.mean[name]), _csv_float(v.std[name]), _csv_float(v.diff[name])]
        writer.writerow(row)
    return buffer.getvalue()


def _csv_float(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6f}"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_text(report: Report) -> str:
    """``ablation.md``: what was run, the two tables, the failed jobs."""
    titles = [METRIC_TITLES[n] for n in METRIC_NAMES]
    ref = report.reference.label
    lines = [
        f"# Ablation: `{report.sweep_dir}`",
        "",
        f"Test-split F-scores (%), mean ± sample std (ddof=1) over seeds "
        f"(`{'`, `'.join(report.ignored)}` ignored when grouping); Δ = mean − mean of "
        f"`{ref}`; `*`: |Δ| > {SE_MARK:g} standard errors of the difference "
        "(sqrt(s₁²/n₁ + s₂²/n₂)), a rough guide with few seeds, not a test.",
        "",
    ]
    if report.shared:
        lines += ["Shared overrides: " + " ".join(f"`{o}`" for o in report.shared), ""]
    for protocol in report.protocols:
        lines += [format_protocol(protocol), ""]
    if len(report.protocols) > 1:
        lines += ["**Warning: the runs were scored under different protocols.**", ""]
    lines += ["## Mean ± std", ""]
    lines.append(_md_row(["variant", "seeds", "failed", *titles]))
    lines.append("|---|---:|---:|" + "---:|" * len(titles))
    for v in report.variants:
        cells = [f"`{v.label}`", str(v.n), str(len(v.failed))]
        lines.append(_md_row(cells + [mean_std_text(v, n) for n in METRIC_NAMES]))
    lines += ["", f"## Δ from `{ref}`", ""]
    lines.append(_md_row(["variant", *titles]))
    lines.append("|---|" + "---:|" * len(titles))
    for v in report.variants:
        lines.append(_md_row([f"`{v.label}`"] + [diff_text(report, v, n) for n in METRIC_NAMES]))
    lines += ["", "## Variants", ""]
    for v in report.variants:
        overrides = " ".join(f"`{o}`" for o in v.overrides) or "(no overrides)"
        lines.append(f"- `{v.label}`: {overrides}; seeds {', '.join(v.seeds) or 'none'}")
    lines += ["", "## Failed or unfinished runs", ""]
    failed = report.failed
    if not failed:
        lines.append("None: every job wrote metrics.json.")
    for run in failed:
        lines.append(f"- `{run.name}` ({report.own_overrides(run)}): {run.problem}")
    return "\n".join(lines) + "\n"


def rich_tables(report: Report) -> list[Table]:
    """The console view: one table per level (mean ± std, n, and Δ of Type), then Δ.

    Split by level so that each table fits a ~110-column terminal.
    """
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
        for v in report.variants:
            n = f"{v.n}" + (f" ({len(v.failed)} failed)" if v.failed else "")
            cells = [mean_std_text(v, m) for m in names]
            table.add_row(v.label, n, *cells, diff_text(report, v, f"{level}_type"))
        tables.append(table)
    deltas = Table(title=f"Δ from {ref} (*: |Δ| > {SE_MARK:g} standard errors)")
    deltas.add_column("variant", style="bold", no_wrap=True)
    for name in METRIC_NAMES:
        deltas.add_column(METRIC_TITLES[name], justify="right", no_wrap=True)
    for v in report.variants:
        deltas.add_row(v.label, *(diff_text(report, v, m) for m in METRIC_NAMES))
    return [*tables, deltas]


# --------------------------------------------------------------------------- figure


def _colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    if count <= 9:  # tab10 without its grey, which the reference row uses
        cmap = colormaps["tab10"]
        return [cmap(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)[:count]]
    cmap = colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def ablation_figure(report: Report) -> Figure:
    """Grouped bars, one group per metric and one bar per variant.

    Left column: mean ± std over seeds (segment level on top, event level below).
    Right column: Δ from the reference ± the standard error of the difference, where
    the small differences an ablation is about are visible.
    """
    variants = report.variants
    count = len(variants)
    width = min(0.8 / max(count, 1), 0.25)
    fig = Figure(figsize=(16, 9.5), layout="constrained")
    axes = fig.subplots(2, 2, gridspec_kw={"width_ratios": [1.15, 1]})
    others = iter(_colors(count - 1))  # the reference row in dark grey, the others coloured
    colors = ["#3b3b3b" if v is report.reference else next(others) for v in variants]
    for row, (level, level_title) in enumerate(LEVEL_TITLES.items()):
        names = level_metrics(level)
        x = np.arange(len(names))
        for i, v in enumerate(variants):
            offset = (i - (count - 1) / 2) * width
            means = [v.mean[n] for n in names]
            stds = [0.0 if math.isnan(v.std[n]) else v.std[n] for n in names]
            axes[row, 0].bar(
                x + offset, means, width, yerr=stds, color=colors[i], label=v.label,
                capsize=2, error_kw={"elinewidth": 0.8},
            )  # fmt: skip
            if v is report.reference:
                continue
            diffs = [v.diff[n] for n in names]
            ses = [diff_se(v, report.reference, n) for n in names]
            axes[row, 1].bar(
                x + offset, diffs, width, yerr=[0.0 if math.isnan(s) else s for s in ses],
                color=colors[i], capsize=2, error_kw={"elinewidth": 0.8},
            )  # fmt: skip
        for col in (0, 1):
            ax = axes[row, col]
            ax.set_xticks(x)
            ax.set_xticklabels([short_title(n) for n in names], fontsize=11)
            ax.grid(axis="y", color="#dddddd", linewidth=0.6)
            ax.set_axisbelow(True)
        axes[row, 0].set_ylabel("F-score (%)")
        axes[row, 0].set_title(f"{level_title}: mean ± std over seeds")
        ref = report.reference.label
        axes[row, 1].axhline(0, color="#333333", linewidth=0.9)
        axes[row, 1].set_ylabel(f"Δ F-score vs {ref} (points)")
        axes[row, 1].set_title(f"{level_title}: Δ from {ref} ± standard error")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    seeds = sorted({v.n for v in variants})
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(count, 5), frameon=False,
        fontsize=10,
    )  # fmt: skip
    failed = len(report.failed)
    fig.suptitle(
        f"{report.sweep_dir.name}: {count} variants, {'/'.join(map(str, seeds))} seeds each"
        + (f", {failed} failed run{'s' * (failed > 1)} not included" if failed else ""),
        fontsize=14,
    )
    return fig


# --------------------------------------------------------------------------- outputs


def write_report(report: Report, out_dir: str | Path | None = None, *, dpi: int = 110) -> dict:
    """Write ``ablation.md``, ``ablation.csv`` and ``ablation.png``; returns their paths."""
    from avvp_lit.figures import save_png

    out = Path(out_dir) if out_dir is not None else report.sweep_dir
    paths = {kind: out / name for kind, name in OUTPUT_NAMES.items()}
    atomic_write_bytes(paths["md"], markdown_text(report).encode())
    atomic_write_bytes(paths["csv"], csv_text(report).encode())
    save_png(ablation_figure(report), paths["png"], dpi=dpi)
    return paths


def read_ablation_csv(path: str | Path) -> Any:
    """``ablation.csv`` as a pandas DataFrame indexed by variant (for notebooks)."""
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=False, na_values={m: [""] for m in _numeric()})
    return frame.set_index("variant")


def _numeric() -> list[str]:
    return [f"{m}_{s}" for m in METRIC_NAMES for s in ("mean", "std", "diff")]


def display_frame(path: str | Path, *, with_diff: bool = True) -> Any:
    """A readable table from ``ablation.csv``: ``mean ± std`` cells (and Δ columns)."""
    import pandas as pd

    frame = read_ablation_csv(path)
    columns: dict[str, Any] = {"seeds": frame["n_seeds"], "failed": frame["n_failed"]}
    for m in METRIC_NAMES:
        mean, std = frame[f"{m}_mean"], frame[f"{m}_std"]
        columns[METRIC_TITLES[m]] = [_mean_std(a, b) for a, b in zip(mean, std, strict=True)]
        if with_diff:
            columns[f"Δ {METRIC_TITLES[m]}"] = [_number(d, signed=True) for d in frame[f"{m}_diff"]]
    return pd.DataFrame(columns, index=frame.index)


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
    parser.add_argument("--dpi", type=int, default=110)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = add_debug_flag(build_parser()).parse_args(argv)
    # a log or a pipe gets the whole table instead of 80 wrapped columns
    console = Console(width=None if sys.stdout.isatty() else 160)

    def body() -> int:
        try:
            report = build_report(
                args.sweep_dir,
                reference=args.reference,
                ignore=tuple(args.ignore) if args.ignore else DEFAULT_IGNORE,
            )
        except KeyError as error:
            raise InputError(str(error.args[0]) if error.args else str(error)) from error
        paths = write_report(report, args.out, dpi=args.dpi)
        for table in rich_tables(report):
            console.print(table)
        if report.failed:
            console.print(f"{len(report.failed)} failed or unfinished runs:", style="red")
            for run in report.failed:
                console.print(f"  {run.name} ({report.own_overrides(run)}): {run.problem}")
        console.print("wrote " + ", ".join(str(p) for p in paths.values()), highlight=False)
        return 0

    return run_cli("avvp-report", body, None if argv is None else list(argv))


if __name__ == "__main__":
    raise SystemExit(main())
