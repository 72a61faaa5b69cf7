"""The end-of-run table fits an 80-column terminal without losing a character, and
summary.md holds the same rows."""

from __future__ import annotations

import io

from rich.console import Console

from avvp_lit.metrics import METRIC_NAMES
from avvp_lit.metrics.functional import METRIC_TITLES
from avvp_lit.metrics.tables import markdown_table, results_table

ROWS = {
    "cafd_no_background": {name: 100.0 - i for i, name in enumerate(METRIC_NAMES)},
    "predict nothing": {name: 0.0 for name in METRIC_NAMES},
    "tiled video-level": {name: 55.55 + i for i, name in enumerate(METRIC_NAMES)},
}


def test_results_table_fits_80_columns_whole() -> None:
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(results_table(ROWS, "test split, %"))
    text = out.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    for label in ROWS:
        assert label in text
    lines = text.splitlines()
    for i, name in enumerate(METRIC_NAMES):
        row = next(line for line in lines if f" {METRIC_TITLES[name]} " in line)
        assert f"{100.0 - i:.2f}" in row and f"{55.55 + i:.2f}" in row


def test_markdown_table_has_the_same_rows() -> None:
    lines = markdown_table(ROWS).splitlines()
    assert lines[0] == "| metric | cafd_no_background | predict nothing | tiled video-level |"
    assert lines[2] == "| Seg A | 100.00 | 0.00 | 55.55 |"
    assert len(lines) == 2 + len(METRIC_NAMES)
