"""The AVVP evaluation protocol: pure batched functions, a torchmetrics Metric, `avvp-eval`.

See ``docs/avvp.md`` §3 for the protocol this reproduces exactly.
``AVVPMetrics`` and ``AVVPDiagnostics`` are imported on first use: torchmetrics pulls in
scipy and matplotlib (1.5 s), which ``avvp-eval`` and the pure functions do not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from avvp_lit.metrics.functional import (
    GATINGS,
    METRIC_NAMES,
    avvp_counts,
    binarize,
    class_f1,
    dataset_scores,
    evaluate,
    event_counts,
    f_scores,
    format_protocol,
    match_runs,
    protocol_dict,
    resolve_thresholds,
    run_indicators,
    scores_from_counts,
    segment_counts,
    video_counts,
)

if TYPE_CHECKING:
    from avvp_lit.metrics.avvp import AVVPDiagnostics, AVVPMetrics

_LAZY = {"AVVPMetrics": "avvp_lit.metrics.avvp", "AVVPDiagnostics": "avvp_lit.metrics.avvp"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GATINGS",
    "METRIC_NAMES",
    "AVVPDiagnostics",
    "AVVPMetrics",
    "avvp_counts",
    "binarize",
    "class_f1",
    "dataset_scores",
    "evaluate",
    "event_counts",
    "f_scores",
    "format_protocol",
    "match_runs",
    "protocol_dict",
    "resolve_thresholds",
    "run_indicators",
    "scores_from_counts",
    "segment_counts",
    "video_counts",
]
