"""The ten numbers as tables: every printed or saved result goes through these.

Metrics are rows and predictors columns, so any number of predictors (a model, its
trivial baselines, a published row) fits 80 columns whole; a comparison of two
predictors adds the paired difference, its interval and p-value per row.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table

from avvp_lit.metrics.bootstrap import PairedDifference
from avvp_lit.metrics.functional import METRIC_NAMES, METRIC_TITLES

Rows = Mapping[str, Mapping[str, float]]  # predictor label -> {metric name: percent}


def results_table(rows: Rows, title: str) -> Table:
    """The ten numbers as rows, one column per predictor."""
    table = Table(title=title)
    table.add_column("metric", style="bold", no_wrap=True)
    for label in rows:
        table.add_column(label, justify="right", no_wrap=True)
    for name in METRIC_NAMES:
        table.add_row(METRIC_TITLES[name], *(_cell(values, name) for values in rows.values()))
    return table


def markdown_table(rows: Rows) -> str:
    """:func:`results_table` in Markdown (``summary.md``)."""
    header = "| metric | " + " | ".join(rows) + " |"
    rule = "|---|" + "---:|" * len(rows)
    body = [
        f"| {METRIC_TITLES[name]} | " + " | ".join(_cell(v, name) for v in rows.values()) + " |"
        for name in METRIC_NAMES
    ]
    return "\n".join([header, rule, *body])


def comparison_table(result: PairedDifference) -> Table:
    """Ten rows (one per number): A, B, B - A, its 95% interval and p; fits 80 columns
    (the files are named under it)."""
    table = Table(title=f"B - A, paired bootstrap over {result.videos} videos (%)")
    table.add_column("metric", no_wrap=True)
    for header in ("A", "B", "B - A", "95% interval", "p"):
        table.add_column(header, justify="right", no_wrap=True)
    for i, name in enumerate(METRIC_NAMES):
        table.add_row(
            METRIC_TITLES[name],
            f"{result.a[i]:.2f}",
            f"{result.b[i]:.2f}",
            f"{result.delta[i]:+.2f}",
            f"[{result.low[i]:+.2f}, {result.high[i]:+.2f}]",
            f"{result.p_value[i]:.4f}",
        )
    return table


def _cell(values: Mapping[str, float], name: str) -> str:
    """A number to two decimals; ``–`` where a predictor has none (a published row
    without event-level numbers, say)."""
    value = values.get(name)
    return "–" if value is None else f"{value:.2f}"
