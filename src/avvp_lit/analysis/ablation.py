"""An ablation sweep, aggregated honestly: what ``avvp-report`` computes.

A sweep directory (local, or copied from a cluster) holds one folder per job, each with
``.hydra/overrides.yaml`` (the job's command-line overrides) and, when the job finished,
``metrics.json`` (the ten test numbers) and ``video_scores.tsv`` (the per-video scores
those numbers average) written by ``avvp-train``. Jobs are grouped into *variants* by
their overrides minus the ignored keys (``ignore``, default ``seed``); each variant gets the ten
numbers as mean ± sample standard deviation over its seeds (``ddof=1``; undefined with
one seed) and, against the reference variant (``full`` when present), a Δ with a 95%
interval from the two-level paired bootstrap over seeds and videos
(:func:`avvp_lit.metrics.bootstrap.two_level_bootstrap`), marked only where the
interval excludes 0. Jobs without a readable ``metrics.json`` are listed with the reason
and never enter a mean; a variant none of whose jobs finished still gets its row.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from rich.console import Console
from rich.table import Table

from avvp_lit.metrics.bootstrap import (
    SeedVideoInterval,
    excludes_zero,
    two_level_bootstrap,
    two_level_method,
)
from avvp_lit.metrics.functional import (
    LEVEL_TITLES,
    METRIC_NAMES,
    METRIC_TITLES,
    format_protocol,
    level_metrics,
    short_title,
)
from avvp_lit.metrics.tables import markdown_table, results_table
from avvp_lit.metrics.video_scores import VIDEO_SCORES_FILE, VideoScoresError, read_video_scores
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.viz.ablation import VariantBars, VariantCurve, ablation_figure, curves_figure
from avvp_lit.viz.figures import save_png

DEFAULT_IGNORE: tuple[str, ...] = ("seed",)
REFERENCE_LABEL = "full"
VARIANT_KEY = "variant"
RESAMPLES = 10_000
# per metric in ablation.csv: mean, std over seeds, Δ of the means, paired Δ and its interval
CSV_COLUMNS: tuple[str, ...] = ("mean", "std", "diff", "delta", "low", "high")
BOOTSTRAP_SEED = 0


# --------------------------------------------------------------------------- overrides


@cache
def _parser() -> OverridesParser:
    return OverridesParser.create()


@cache
def _parsed(override: str) -> Any:
    """Hydra's reading of one override (each is asked for its key and value often)."""
    return _parser().parse_override(override)


def override_key(override: str) -> str:
    """The config key an override sets, by Hydra's own parser: ``+a.b=1`` -> ``a.b``,
    ``model/secm=none`` -> ``model/secm``; a deletion keeps its ``~`` (``~loss.terms.x``)."""
    parsed = _parsed(override)
    key = (
        parsed.key_or_group if parsed.package is None else f"{parsed.key_or_group}@{parsed.package}"
    )
    return f"~{key}" if parsed.type is OverrideType.DEL else key


def override_value(override: str) -> str:
    """The value as written on the command line (``''`` for a deletion)."""
    parsed = _parsed(override)
    return "" if parsed.type is OverrideType.DEL else parsed.get_value_element_as_str()


def _natural_key(name: str) -> list[Any]:
    """Sort ``2`` before ``10`` (Hydra numbers its job folders)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class SweepJob:
    """One job of a sweep: ``name`` its folder relative to the sweep directory.

    ``metrics`` maps the ten ``METRIC_NAMES`` to floats, or is None when the job has no
    usable ``metrics.json`` (``problem`` says why). ``protocol`` is the evaluation
    protocol recorded beside the numbers.
    """

    name: str
    folder: Path
    overrides: tuple[str, ...]
    metrics: dict[str, float] | None
    protocol: dict[str, Any] | None = None
    problem: str | None = None
    published: dict[str, Any] | None = None  # the method's published row (real data)
    training: dict[str, Any] | None = None  # how long it trained (metrics.json "training")

    @property
    def ok(self) -> bool:
        return self.metrics is not None


def _read_metrics(path: Path) -> dict[str, Any]:
    """``metrics``, ``protocol``, ``published`` and ``problem`` of a job's metrics.json."""
    if not path.is_file():
        return {"metrics": None, "problem": "no metrics.json (failed or unfinished)"}
    try:
        payload = json.loads(path.read_text())
        metrics = {name: float(payload[name]) for name in METRIC_NAMES}
    except (OSError, ValueError, KeyError, TypeError) as error:
        problem = f"unreadable metrics.json ({type(error).__name__}: {error})"
        return {"metrics": None, "problem": problem}
    protocol, published = payload.get("protocol"), payload.get("published")
    return {
        "metrics": metrics,
        "protocol": protocol if isinstance(protocol, dict) else None,
        "published": published if isinstance(published, dict) else None,
        "training": _training_record(payload.get("training")),
    }


def _training_record(record: Any) -> dict[str, Any] | None:
    """A job's ``training`` entry when it has the fields the regime is read from (an
    integer ``epochs`` and a list ``val_seg_type``); anything else counts as not recorded."""
    if not isinstance(record, dict):
        return None
    if not isinstance(record.get("epochs"), int) or not isinstance(
        record.get("val_seg_type"), list
    ):
        return None
    return record


def find_sweep_jobs(sweep_dir: str | Path) -> list[SweepJob]:
    """Every job folder under ``sweep_dir`` (any depth), in natural name order.

    A job folder is one holding ``.hydra/overrides.yaml``; ``sweep_dir`` itself counts
    when it is a single run directory.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    jobs = []
    for overrides_file in root.rglob(".hydra/overrides.yaml"):
        folder = overrides_file.parent.parent
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        jobs.append(
            SweepJob(
                name=folder.relative_to(root).as_posix(),
                folder=folder,
                overrides=tuple(str(o) for o in overrides),
                **_read_metrics(folder / "metrics.json"),
            )
        )
    return sorted(jobs, key=lambda job: _natural_key(job.name))


# --------------------------------------------------------------------------- variants


@dataclass
class Variant:
    """The jobs sharing every override but the ignored ones (the seeds).

    ``mean``/``std`` map metric names to floats over the finished jobs (NaN when there
    are none; ``std`` NaN with fewer than two); ``diff`` is ``mean - reference mean``.
    ``interval`` is the bootstrap of the Δ from the reference over the seeds both
    finished (None for the reference itself, or when it cannot be computed:
    ``interval_problem`` says why).
    """

    label: str
    overrides: tuple[str, ...]
    jobs: list[SweepJob] = field(default_factory=list)
    seed_labels: list[str] = field(default_factory=list)  # one per job
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    diff: dict[str, float] = field(default_factory=dict)
    interval: SeedVideoInterval | None = None
    interval_problem: str | None = None

    @property
    def finished(self) -> list[SweepJob]:
        return [job for job in self.jobs if job.ok]

    @property
    def failed(self) -> list[SweepJob]:
        return [job for job in self.jobs if not job.ok]

    @property
    def n(self) -> int:
        return len(self.finished)

    @property
    def seeds(self) -> list[str]:
        """The seed labels of the finished jobs, e.g. ``["1", "2", "3"]``."""
        return [s for job, s in zip(self.jobs, self.seed_labels, strict=True) if job.ok]

    @property
    def records(self) -> list[dict[str, Any]]:
        """The ``training`` records of the finished jobs that have one."""
        return [job.training for job in self.finished if job.training]

    def finished_by_seed(self) -> dict[str, SweepJob]:
        return {s: job for job, s in zip(self.jobs, self.seed_labels, strict=True) if job.ok}

    def delta(self, metric: str) -> float:
        """The Δ shown: over the paired seeds when an interval exists, else of the means."""
        if self.interval is not None:
            return float(self.interval.delta[METRIC_NAMES.index(metric)])
        return self.diff[metric]

    def resolved(self, metric: str) -> bool:
        """The 95% interval of the Δ excludes 0."""
        return self.interval is not None and bool(
            self.interval.resolved[METRIC_NAMES.index(metric)]
        )

    def bounds(self, metric: str) -> tuple[float, float]:
        if self.interval is None:
            return math.nan, math.nan
        i = METRIC_NAMES.index(metric)
        return float(self.interval.low[i]), float(self.interval.high[i])


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
class AblationReport:
    """A sweep's variants in job order, the reference row and the shared overrides."""

    sweep_dir: Path
    variants: list[Variant]
    reference: Variant
    shared: tuple[str, ...]
    ignored: tuple[str, ...]
    protocols: list[dict[str, Any]]
    resamples: int = RESAMPLES
    bootstrap_seed: int = BOOTSTRAP_SEED

    @property
    def failed(self) -> list[SweepJob]:
        return [job for variant in self.variants for job in variant.failed]

    def own_overrides(self, job: SweepJob) -> str:
        """A job's overrides without those every variant shares (what tells it apart)."""
        return " ".join(o for o in job.overrides if o not in self.shared)

    def variant(self, label: str) -> Variant:
        for variant in self.variants:
            if variant.label == label:
                return variant
        raise KeyError(f"no variant {label!r}; variants: {[v.label for v in self.variants]}")

    @property
    def method(self) -> str:
        return two_level_method(self.resamples, self.bootstrap_seed)

    @property
    def published(self) -> dict[str, dict[str, float]]:
        """The published rows the jobs recorded (real data only), by label."""
        rows: dict[str, dict[str, float]] = {}
        for variant in self.variants:
            for job in variant.finished:
                if job.published:
                    rows[f"published {job.published['method']}"] = job.published["metrics"]
        return rows


def metrics_frame(variants: Sequence[Variant]) -> pd.DataFrame:
    """One row per finished job: ``variant``, ``seed`` and the ten numbers."""
    rows = [
        {"variant": v.label, "seed": seed, **job.metrics}
        for v in variants
        for job, seed in zip(v.jobs, v.seed_labels, strict=True)
        if job.metrics is not None
    ]
    return pd.DataFrame(rows, columns=["variant", "seed", *METRIC_NAMES])


def _aggregate(variants: Sequence[Variant]) -> None:
    """Fill ``mean``/``std`` of every variant: one ``groupby().agg`` over the jobs."""
    stats = metrics_frame(variants).groupby("variant", sort=False)[list(METRIC_NAMES)]
    table = stats.agg(["mean", "std"])  # std: ddof=1, NaN for one seed
    for v in variants:
        found = v.label in table.index
        for name in METRIC_NAMES:
            v.mean[name] = float(table.loc[v.label, (name, "mean")]) if found else math.nan
            v.std[name] = float(table.loc[v.label, (name, "std")]) if found else math.nan


def _video_scores(job: SweepJob) -> tuple[list[str], np.ndarray]:
    """A job's per-video scores; each file is parsed once while it is unchanged (the
    reference's jobs serve every row of the report)."""
    path = job.folder / VIDEO_SCORES_FILE
    if not path.is_file():
        raise VideoScoresError(f"job {job.name} has no {VIDEO_SCORES_FILE}")
    stat = path.stat()
    return _read_once(path, stat.st_mtime_ns, stat.st_size)


@cache
def _read_once(path: Path, mtime_ns: int, size: int) -> tuple[list[str], np.ndarray]:
    return read_video_scores(path)


def paired_interval(
    variant: Variant, reference: Variant, *, resamples: int, seed: int
) -> SeedVideoInterval:
    """The two-level bootstrap of ``variant - reference`` over the seeds both finished.

    Raises ``VideoScoresError`` naming what is missing (no common seed, a job without
    per-video scores, or jobs scored on different videos).
    """
    for side in (variant, reference):
        seeds = side.seeds
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            which = ", ".join(repeated) or "no seed"
            raise VideoScoresError(
                f"{side.label} has more than one finished job for {which} (cannot pair "
                "them; pass --ignore for the key that tells them apart)"
            )
    ours, theirs = variant.finished_by_seed(), reference.finished_by_seed()
    common = [s for s in ours if s in theirs]
    if not common:
        raise VideoScoresError(f"no seed finished in both {variant.label} and {reference.label}")
    stacks: list[list[np.ndarray]] = [[], []]
    names: list[str] | None = None
    for s in common:
        for side, job in enumerate((ours[s], theirs[s])):
            filenames, scores = _video_scores(job)
            if names is None:
                names = filenames
            elif filenames != names:
                raise VideoScoresError(f"job {job.name} was scored on other videos")
            stacks[side].append(scores / 100.0)
    return two_level_bootstrap(
        np.stack(stacks[1]), np.stack(stacks[0]), resamples=resamples, seed=seed
    )


def _seed_label(overrides: Sequence[str], ignored: tuple[str, ...]) -> str:
    """What tells a variant's jobs apart: the seed's value (``3``), or with several
    ignored keys their sorted ``key=value`` pairs (``fold=2,seed=3``)."""
    pairs = sorted(
        (override_key(o), override_value(o)) for o in overrides if override_key(o) in ignored
    )
    if len(ignored) == 1:
        return ",".join(value for _, value in pairs)
    return ",".join(f"{key}={value}" for key, value in pairs)


def build_report(
    sweep_dir: str | Path,
    *,
    reference: str | None = None,
    ignore: Iterable[str] = DEFAULT_IGNORE,
    resamples: int = RESAMPLES,
    bootstrap_seed: int = BOOTSTRAP_SEED,
) -> AblationReport:
    """Group the jobs of ``sweep_dir`` into variants, aggregate them and bootstrap every
    Δ from the reference (``full`` when a variant has that label, else the first)."""
    jobs = find_sweep_jobs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no job folders (.hydra/overrides.yaml) under {sweep_dir}")
    ignored = tuple(ignore)
    groups: dict[tuple[str, ...], list[tuple[SweepJob, str]]] = {}
    for job in jobs:
        kept = tuple(sorted(o for o in job.overrides if override_key(o) not in ignored))
        seed = _seed_label(job.overrides, ignored)
        groups.setdefault(kept, []).append((job, seed))
    keys = list(groups)
    shared = set.intersection(*(set(k) for k in keys)) if len(keys) > 1 else set()
    variants = [
        Variant(
            label=label,
            overrides=tuple(o for o in key if o not in shared),
            jobs=[job for job, _ in groups[key]],
            seed_labels=[seed for _, seed in groups[key]],
        )
        for key, label in zip(keys, _labels(keys, shared), strict=True)
    ]
    _aggregate(variants)
    chosen = _reference(variants, reference)
    for variant in variants:
        variant.diff = {m: variant.mean[m] - chosen.mean[m] for m in METRIC_NAMES}
        if variant is chosen:
            continue
        try:
            variant.interval = paired_interval(
                variant, chosen, resamples=resamples, seed=bootstrap_seed
            )
        except VideoScoresError as error:
            variant.interval_problem = str(error)
    protocols: list[dict[str, Any]] = []
    for job in jobs:
        if job.protocol is not None and job.protocol not in protocols:
            protocols.append(job.protocol)
    return AblationReport(
        sweep_dir=Path(sweep_dir),
        variants=variants,
        reference=chosen,
        shared=tuple(sorted(shared)),
        ignored=ignored,
        protocols=protocols,
        resamples=resamples,
        bootstrap_seed=bootstrap_seed,
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


# --------------------------------------------------------------------------- regime


def regime_lines(report: AblationReport) -> list[str]:
    """The regime the sweep measured, in words: the stopping rule(s) and the data size
    of its finished jobs (several of either are listed, since then the rows differ in more
    than their variant)."""
    records = [record for v in report.variants for record in v.records]
    if not records:
        return ["Regime: not recorded (jobs written before avvp-lit recorded their training)."]
    rules = [rule for rule in dict.fromkeys(r.get("stopping") for r in records) if rule]
    sizes = list(
        dict.fromkeys(
            " / ".join(f"{n} {split}" for split, n in r["videos"].items()) + " videos"
            for r in records
            if isinstance(r.get("videos"), dict)
        )
    )
    lines = ["Stopping rule: " + "; ".join(rules) + "."]
    if len(rules) > 1:
        lines.append("**Warning: the jobs stopped by different rules.**")
    if sizes:
        lines.append("Data: " + "; ".join(sizes) + ".")
    lines.append(
        "Each job tests its best validation epoch; epochs trained and epoch tested are "
        "the mean (min–max) over seeds."
    )
    return lines


def range_cell(values: Sequence[int]) -> str:
    """``11.3 (9–14)``; ``9`` for one value or equal values; ``–`` for none."""
    if not values:
        return "–"
    low, high = min(values), max(values)
    if low == high:
        return str(low)
    return f"{sum(values) / len(values):.1f} ({low}–{high})"


def regime_cells(variant: Variant) -> list[str]:
    """Epochs trained, epoch tested, and stopped early ``k/n`` of a variant's finished
    jobs (``n``: those with a training record; the others are counted as not recorded)."""
    records = variant.records
    missing = variant.n - len(records)
    stopped = sum(bool(r.get("stopped_early")) for r in records)
    early = f"{stopped}/{len(records)}" if records else "–"
    if missing:
        early += f" ({missing} not recorded)"
    epochs = [r["epochs"] for r in records]
    tested = [int(r["best_epoch"]) for r in records if r.get("best_epoch")]
    return [range_cell(epochs), range_cell(tested), early]


REGIME_HEADERS: tuple[str, ...] = ("epochs trained", "epoch tested", "stopped early")


def figure_curves(report: AblationReport) -> list[VariantCurve]:
    """What :func:`avvp_lit.viz.ablation.curves_figure` draws: each variant's recorded
    validation curves (variants without any are left out)."""
    curves = []
    for v in report.variants:
        scores = [r["val_seg_type"] for r in v.records]
        if not any(scores):
            continue
        curves.append(
            VariantCurve(
                label=v.label,
                scores=scores,
                tested=[int(r.get("best_epoch") or 0) for r in v.records],
                is_reference=v is report.reference,
            )
        )
    return curves


# --------------------------------------------------------------------------- text


def number_text(value: float, digits: int = 2, signed: bool = False) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def mean_std_cell(mean: float, std: float) -> str:
    """``45.12 ± 1.03``; ``45.12`` with one seed; ``–`` with none."""
    if math.isnan(mean):
        return "–"
    return number_text(mean) if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def mean_std_text(variant: Variant, metric: str) -> str:
    return mean_std_cell(variant.mean[metric], variant.std[metric])


def diff_text(report: AblationReport, variant: Variant, metric: str) -> str:
    """``-1.20*`` (``*``: the 95% interval excludes 0); ``ref`` for the reference."""
    if variant is report.reference:
        return "ref"
    return number_text(variant.delta(metric), signed=True) + (
        "*" if variant.resolved(metric) else ""
    )


def interval_text(variant: Variant, metric: str) -> str:
    """``[-2.10, -0.30]``; ``–`` without an interval."""
    return _interval_cell(*variant.bounds(metric))


def _interval_cell(low: float, high: float) -> str:
    return "–" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def csv_frame(report: AblationReport) -> pd.DataFrame:
    """One row per variant: label, overrides, seeds, failures, and per metric the mean,
    std, Δ of the means, and the paired Δ with its interval (NaN where undefined)."""
    rows = []
    for v in report.variants:
        row: dict[str, Any] = {
            "variant": v.label,
            "overrides": " ".join(v.overrides),
            "n_seeds": v.n,
            "seeds": " ".join(v.seeds),
            "n_failed": len(v.failed),
            "failed_runs": " ".join(job.name for job in v.failed),
            "paired_seeds": "" if v.interval is None else v.interval.seeds,
            "interval_problem": v.interval_problem or "",
        }
        for name in METRIC_NAMES:
            low, high = v.bounds(name)
            delta = v.delta(name) if v.interval is not None else math.nan
            values = (v.mean[name], v.std[name], v.diff[name], delta, low, high)
            row.update({f"{name}_{stat}": x for stat, x in zip(CSV_COLUMNS, values, strict=True)})
        rows.append(row)
    return pd.DataFrame(rows)


def csv_text(report: AblationReport) -> str:
    """``ablation.csv``: :func:`csv_frame` with six decimals, empty cells for NaN."""
    return csv_frame(report).to_csv(index=False, float_format="%.6f", lineterminator="\n")


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_text(report: AblationReport) -> str:
    """``ablation.md``: what was run, the tables, the method, the failed jobs."""
    titles = [METRIC_TITLES[n] for n in METRIC_NAMES]
    ref = report.reference.label
    lines = [
        f"# Ablation: `{report.sweep_dir}`",
        "",
        f"Test-split F-scores (%), mean ± sample std (ddof=1) over seeds "
        f"(`{'`, `'.join(report.ignored)}` ignored when grouping). Δ = variant − `{ref}` "
        "over the seeds both finished, with its 95% interval; `*` marks a Δ whose interval "
        "excludes 0, and only those.",
        "",
        report.method,
        "",
    ]
    if report.shared:
        lines += ["Shared overrides: " + " ".join(f"`{o}`" for o in report.shared), ""]
    for protocol in report.protocols:
        lines += [format_protocol(protocol), ""]
    if len(report.protocols) > 1:
        lines += ["**Warning: the jobs were scored under different protocols.**", ""]
    lines += ["## Regime", "", *regime_lines(report), ""]
    lines.append(_md_row(["variant", "seeds", *REGIME_HEADERS]))
    lines.append("|---|---:|" + "---:|" * len(REGIME_HEADERS))
    for v in report.variants:
        cells = regime_cells(v)
        lines.append(_md_row([f"`{v.label}`", str(v.n), *cells]))
    lines += ["", "## Mean ± std", ""]
    lines.append(_md_row(["variant", "seeds", "failed", *titles]))
    lines.append("|---|---:|---:|" + "---:|" * len(titles))
    for v in report.variants:
        cells = [f"`{v.label}`", str(v.n), str(len(v.failed))]
        lines.append(_md_row(cells + [mean_std_text(v, n) for n in METRIC_NAMES]))
    lines += ["", f"## Δ from `{ref}` [95% interval]", ""]
    lines.append(_md_row(["variant", "paired seeds", *titles]))
    lines.append("|---|---:|" + "---:|" * len(titles))
    for v in report.variants:
        if v is report.reference:
            continue
        paired = "–" if v.interval is None else str(v.interval.seeds)
        cells = [f"{diff_text(report, v, n)} {interval_text(v, n)}" for n in METRIC_NAMES]
        lines.append(_md_row([f"`{v.label}`", paired, *cells]))
    missing = [v for v in report.variants if v.interval_problem]
    if missing:
        lines += ["", "No interval (Δ of the means, unmarked):"]
        lines += [f"- `{v.label}`: {v.interval_problem}" for v in missing]
    if report.published:
        lines += [
            "",
            "## Published rows",
            "",
            "As published (another code base, its own protocol; sources in docs/results.md), "
            "for orientation only:",
            "",
            markdown_table(report.published),
        ]
    lines += ["", "## Variants", ""]
    for v in report.variants:
        overrides = " ".join(f"`{o}`" for o in v.overrides) or "(no overrides)"
        lines.append(f"- `{v.label}`: {overrides}; seeds {', '.join(v.seeds) or 'none'}")
    lines += ["", "## Failed or unfinished jobs", ""]
    failed = report.failed
    if not failed:
        lines.append("None: every job wrote metrics.json.")
    for job in failed:
        lines.append(f"- `{job.name}` ({report.own_overrides(job)}): {job.problem}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- notebooks


def read_ablation_csv(path: str | Path) -> pd.DataFrame:
    """``ablation.csv`` as a DataFrame indexed by variant."""
    frame = pd.read_csv(path, keep_default_na=False, na_values={m: [""] for m in _numeric()})
    return frame.set_index("variant")


def _numeric() -> list[str]:
    return [f"{m}_{s}" for m in METRIC_NAMES for s in CSV_COLUMNS]


def display_frame(path: str | Path, *, with_diff: bool = True) -> pd.DataFrame:
    """A readable table from ``ablation.csv``: ``mean ± std`` cells and, with
    ``with_diff``, the paired Δ with its interval (``*`` where it excludes 0)."""
    frame = read_ablation_csv(path)
    columns: dict[str, Any] = {"seeds": frame["n_seeds"], "failed": frame["n_failed"]}
    for m in METRIC_NAMES:
        mean, std = frame[f"{m}_mean"], frame[f"{m}_std"]
        columns[METRIC_TITLES[m]] = [mean_std_cell(a, b) for a, b in zip(mean, std, strict=True)]
        if with_diff:
            columns[f"Δ {METRIC_TITLES[m]}"] = [
                _delta_cell(d, lo, hi)
                for d, lo, hi in zip(
                    frame[f"{m}_delta"], frame[f"{m}_low"], frame[f"{m}_high"], strict=True
                )
            ]
    return pd.DataFrame(columns, index=frame.index)


def _delta_cell(delta: float, low: float, high: float) -> str:
    if math.isnan(delta):
        return "–"
    mark = "*" if excludes_zero(low, high) else ""
    return f"{delta:+.2f}{mark} {_interval_cell(low, high)}"


# --------------------------------------------------------------------------- outputs

OUTPUT_NAMES: dict[str, str] = {
    "md": "ablation.md",
    "csv": "ablation.csv",
    "png": "ablation.png",
    "curves": "ablation_curves.png",  # written when the jobs recorded their curves
}


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


def regime_table(report: AblationReport) -> Table:
    """The console view of the regime: per variant, epochs trained, epoch tested,
    stopped early."""
    table = Table(title=f"{report.sweep_dir.name}: regime (mean (min–max) over seeds)")
    table.add_column("variant", style="bold", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for header in REGIME_HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    for v in report.variants:
        table.add_row(v.label, str(v.n), *regime_cells(v))
    return table


def figure_bars(report: AblationReport) -> list[VariantBars]:
    """What :func:`avvp_lit.viz.ablation.ablation_figure` draws for each variant."""
    bars = []
    for v in report.variants:
        bounds = {name: v.bounds(name) for name in METRIC_NAMES}
        bars.append(
            VariantBars(
                label=v.label,
                mean=v.mean,
                std=v.std,
                delta={name: v.delta(name) for name in METRIC_NAMES},
                low={name: low for name, (low, _) in bounds.items()},
                high={name: high for name, (_, high) in bounds.items()},
                has_interval=v.interval is not None,
                is_reference=v is report.reference,
            )
        )
    return bars


def figure_title(report: AblationReport) -> str:
    seeds = sorted({v.n for v in report.variants})
    failed = len(report.failed)
    return (
        f"{report.sweep_dir.name}: {len(report.variants)} variants, "
        f"{'/'.join(map(str, seeds))} seeds each"
        + (f", {failed} failed job{'s' * (failed > 1)} not included" if failed else "")
    )


def write_report(
    report: AblationReport, out_dir: str | Path | None = None, *, dpi: int = 110
) -> dict[str, Path]:
    """Write ``ablation.md``, ``ablation.csv``, ``ablation.png`` and, when the jobs
    recorded their validation curves, ``ablation_curves.png``; returns their paths."""
    out = Path(out_dir) if out_dir is not None else report.sweep_dir
    paths = {kind: out / name for kind, name in OUTPUT_NAMES.items()}
    atomic_write_bytes(paths["md"], markdown_text(report).encode())
    atomic_write_bytes(paths["csv"], csv_text(report).encode())
    figure = ablation_figure(figure_bars(report), title=figure_title(report))
    save_png(figure, paths["png"], dpi=dpi)
    curves = figure_curves(report)
    if curves:
        title = f"{report.sweep_dir.name}: validation curves"
        save_png(curves_figure(curves, title=title), paths["curves"], dpi=dpi)
    else:
        del paths["curves"]
    return paths


def print_report(report: AblationReport, paths: Mapping[str, Path], console: Console) -> None:
    """The regime, the tables, the method, what has no interval, the failed jobs, the
    files written."""
    console.print(regime_table(report))
    for line in regime_lines(report):
        console.print(line, highlight=False)
    for table in rich_tables(report):
        console.print(table)
    console.print(report.method, highlight=False)
    if report.published:
        console.print(results_table(report.published, "published rows (docs/results.md)"))
    for v in report.variants:
        if v.interval_problem:
            console.print(f"no interval for {v.label}: {v.interval_problem}", style="yellow")
    if report.failed:
        console.print(f"{len(report.failed)} failed or unfinished jobs:", style="red")
        for job in report.failed:
            console.print(f"  {job.name} ({report.own_overrides(job)}): {job.problem}")
    console.print("wrote " + ", ".join(str(p) for p in paths.values()), highlight=False)
