"""The result files of a run and the table printed at its end.

A run directory receives ``metrics.json`` (the ten numbers, the protocol, the config
hash, the trivial baselines), ``predictions.npz`` (the `avvp-eval` format) and
``summary.md``; each is written to a temporary file and renamed, so an interrupted run
never leaves a half-written result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from avvp_lit.metrics import METRIC_NAMES, AVVPMetrics, format_protocol
from avvp_lit.metrics.functional import METRIC_TITLES
from avvp_lit.predictions import (
    PREDICTION_KEYS,
    trivial_baselines,
    write_predictions,
)
from avvp_lit.utils.atomic import atomic_write_bytes


def config_hash(resolved_yaml: str) -> str:
    """sha256 of the resolved config text: two runs with one hash ran one configuration."""
    return hashlib.sha256(resolved_yaml.encode()).hexdigest()


def score_predictions(
    predictions: Mapping[str, np.ndarray],
    gt_audio: np.ndarray,
    gt_visual: np.ndarray,
    metric_settings: Mapping[str, Any],
) -> dict[str, float]:
    """The ten numbers for arrays in split order (used for the baselines)."""
    import torch

    # local arrays, scored locally: under DDP only rank 0 gets here, so never synchronise
    metric = AVVPMetrics(**metric_settings, sync_on_compute=False)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(predictions[k])) for k in PREDICTION_KEYS}
    metric.update(
        **tensors,
        gt_audio=torch.from_numpy(gt_audio),
        gt_visual=torch.from_numpy(gt_visual),
        index=torch.arange(len(gt_audio)),
    )
    return metric.compute()


def results_table(rows: Mapping[str, Mapping[str, float]], title: str) -> Table:
    """The ten numbers as rows, one column per predictor: fits 80 columns whole."""
    table = Table(title=title)
    table.add_column("metric", style="bold", no_wrap=True)
    for label in rows:
        table.add_column(label, justify="right", no_wrap=True)
    for name in METRIC_NAMES:
        table.add_row(METRIC_TITLES[name], *(f"{values[name]:.2f}" for values in rows.values()))
    return table


def markdown_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """:func:`results_table` in Markdown (``summary.md``)."""
    header = "| metric | " + " | ".join(rows) + " |"
    rule = "|---|" + "---:|" * len(rows)
    body = [
        f"| {METRIC_TITLES[name]} | "
        + " | ".join(f"{values[name]:.2f}" for values in rows.values())
        + " |"
        for name in METRIC_NAMES
    ]
    return "\n".join([header, rule, *body])


def write_run_results(
    output_dir: Path,
    *,
    model_label: str,
    metrics: Mapping[str, float],
    predictions: Mapping[str, np.ndarray],
    filenames: Sequence[str],
    gt_audio: np.ndarray,
    gt_visual: np.ndarray,
    metric_settings: Mapping[str, Any],
    protocol: Mapping[str, Any],
    resolved_config: str,
    overrides: Sequence[str],
    checkpoint: str | None,
    extra: Mapping[str, Any] | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Write metrics.json, predictions.npz and summary.md; print the result table."""
    output_dir = Path(output_dir)
    if len(predictions["index"]) != len(filenames) or not np.array_equal(
        predictions["index"], np.arange(len(filenames))
    ):
        raise RuntimeError(
            f"predictions cover {len(predictions['index'])} of {len(filenames)} videos; "
            "a partial test pass (limit_test_batches?) writes no predictions.npz"
        )
    baselines = {
        label: score_predictions(arrays, gt_audio, gt_visual, metric_settings)
        for label, arrays in trivial_baselines(predictions).items()
    }
    rows = {model_label: dict(metrics), **baselines}
    payload = {
        **{name: float(metrics[name]) for name in METRIC_NAMES},
        "protocol": dict(protocol),
        "config_sha256": config_hash(resolved_config),
        "checkpoint": checkpoint,
        "baselines": baselines,
        **(dict(extra) if extra else {}),
    }
    write_predictions(output_dir / "predictions.npz", list(filenames), predictions)
    atomic_write_bytes(output_dir / "metrics.json", json.dumps(payload, indent=2).encode())
    summary = "\n\n".join(
        [
            f"# {model_label}",
            markdown_table(rows),
            format_protocol(protocol),
            "Overrides: " + (" ".join(f"`{o}`" for o in overrides) if overrides else "none"),
            f"Checkpoint: `{checkpoint}`" if checkpoint else "Checkpoint: final weights",
            f"Config sha256: `{payload['config_sha256']}`",
        ]
    )
    atomic_write_bytes(output_dir / "summary.md", (summary + "\n").encode())
    console = console or Console()
    console.print(results_table(rows, f"{protocol.get('split', 'test')} split, F-score %"))
    console.print(format_protocol(protocol), highlight=False)
    console.print(f"results in {output_dir}", highlight=False)
    return payload
