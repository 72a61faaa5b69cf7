"""Published LLP test numbers (``resources/published_results.json``; sources in
docs/results.md): the row of a run's own method and feature set, printed beside the run's
numbers on real data. A published row is another protocol's number (other gating, other
audio annotation file, another code base), shown for orientation, never compared with
an interval."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from avvp_lit.metrics.functional import METRIC_NAMES

RESOURCE = ("resources", "published_results.json")


@dataclass(frozen=True)
class PublishedRow:
    method: str
    model: str
    feature_set: str
    paper: str
    source: str
    metrics: dict[str, float]

    @property
    def label(self) -> str:
        return f"published {self.method}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "paper": self.paper,
            "source": self.source,
            "metrics": dict(self.metrics),
        }


@cache
def published_rows() -> tuple[PublishedRow, ...]:
    text = resources.files("avvp_lit").joinpath(*RESOURCE).read_text()
    rows = []
    for row in json.loads(text)["rows"]:
        metrics = {name: float(row["metrics"][name]) for name in METRIC_NAMES}
        rows.append(PublishedRow(**{**row, "metrics": metrics}))
    return tuple(rows)


def published_row(model: str | None, feature_set: str | None) -> PublishedRow | None:
    """The published row of this network (``model.name``) on this feature set, if any."""
    for row in published_rows():
        if (row.model, row.feature_set) == (model, feature_set):
            return row
    return None
