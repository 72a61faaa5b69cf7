"""The result files of a run and the table printed at its end.

A run directory receives ``metrics.json`` (the ten numbers, the protocol, the config
hash, the trivial baselines), ``predictions.npz`` (the `avvp-eval` format),
``video_scores.tsv`` (the model's per-video scores, for paired comparisons) and
``summary.md``; each is written to a temporary file and renamed, so an interrupted run
never leaves a half-written result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import EarlyStopping
from omegaconf import DictConfig
from rich.console import Console

from avvp_lit.classes import PREDICTION_KEYS
from avvp_lit.engine.callbacks import ValidationCurve
from avvp_lit.engine.rundir import output_dir, task_overrides
from avvp_lit.metrics import METRIC_NAMES, AVVPMetrics, format_protocol
from avvp_lit.metrics.prediction_file import write_predictions
from avvp_lit.metrics.published import PublishedRow, published_row
from avvp_lit.metrics.tables import markdown_table, results_table
from avvp_lit.metrics.video_scores import VIDEO_SCORES_FILE, write_video_scores
from avvp_lit.utils.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from avvp_lit.engine.module import AVVPModule


def config_hash(resolved_yaml: str) -> str:
    """sha256 of the resolved config text: two runs with one hash ran one configuration."""
    return hashlib.sha256(resolved_yaml.encode()).hexdigest()


def write_run_results(
    output_dir: Path,
    *,
    model_label: str,
    metrics: Mapping[str, float],
    video_scores: np.ndarray,
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
    published: PublishedRow | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Write metrics.json, predictions.npz, video_scores.tsv and summary.md; print the
    result table. ``video_scores`` (N, 10) percent in split order: the test pass's own
    per-video scores (``AVVPDiagnostics.video_scores``), not scored again. ``published``:
    the method's published row, shown beside the run (real data only)."""
    output_dir = Path(output_dir)
    if len(predictions["index"]) != len(filenames) or not np.array_equal(
        predictions["index"], np.arange(len(filenames))
    ):
        raise RuntimeError(
            f"predictions cover {len(predictions['index'])} of {len(filenames)} videos; "
            "a partial test pass (limit_test_batches?) writes no predictions.npz"
        )
    baselines = {
        label: AVVPMetrics.from_arrays(arrays, gt_audio, gt_visual, **metric_settings).compute()
        for label, arrays in trivial_baselines(predictions).items()
    }
    rows = {model_label: dict(metrics), **baselines}
    if published is not None:
        rows[published.label] = published.metrics
    payload = {
        **{name: float(metrics[name]) for name in METRIC_NAMES},
        "protocol": dict(protocol),
        "config_sha256": config_hash(resolved_config),
        "checkpoint": checkpoint,
        "baselines": baselines,
        **({"published": published.as_dict()} if published is not None else {}),
        **(dict(extra) if extra else {}),
    }
    write_predictions(output_dir / "predictions.npz", list(filenames), predictions)
    write_video_scores(output_dir / VIDEO_SCORES_FILE, video_scores, list(filenames))
    atomic_write_bytes(output_dir / "metrics.json", json.dumps(payload, indent=2).encode())
    summary = "\n\n".join(
        [
            f"# {model_label}",
            markdown_table(rows),
            format_protocol(protocol),
            "Overrides: " + (" ".join(f"`{o}`" for o in overrides) if overrides else "none"),
            f"Checkpoint: `{checkpoint}`" if checkpoint else "Checkpoint: final weights",
            f"Config sha256: `{payload['config_sha256']}`",
            *([f"Published row: {published.paper}; {published.source}"] if published else []),
        ]
    )
    atomic_write_bytes(output_dir / "summary.md", (summary + "\n").encode())
    console = console or Console()
    console.print(results_table(rows, f"{protocol.get('split', 'test')} split, F-score %"))
    console.print(format_protocol(protocol), highlight=False)
    if published is not None:
        console.print(
            f"{published.label}: {published.source} (another code base and protocol; "
            "docs/results.md)",
            highlight=False,
        )
    console.print(f"results in {output_dir}", highlight=False)
    return payload


def trivial_baselines(predictions: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Two reference predictors scored on the same split as the model.

    ``nothing``: no event anywhere. ``tiled``: the model's own video-level prediction
    copied to all ten seconds of both modalities — what a parser with no temporal
    ability scores.
    """
    frame = predictions["frame_prob"]
    nothing = {key: np.zeros_like(predictions[key]) for key in PREDICTION_KEYS}
    tiled = dict(predictions)
    tiled["frame_prob"] = np.broadcast_to(
        predictions["global_prob"][:, None, None, :], frame.shape
    ).copy()
    return {"predict nothing": nothing, "tiled video-level": tiled}


def write_tested_split(
    cfg: DictConfig,
    module: AVVPModule,
    datamodule: Any,
    *,
    split: str,
    model_label: str,
    resolved_config: str,
    checkpoint: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the result files of a finished test pass over ``split`` (rank 0 only)."""
    tested = datamodule.split(split)
    return write_run_results(
        output_dir(cfg),
        model_label=model_label,
        metrics=module.test_outputs["metrics"],
        video_scores=module.test_outputs["diagnostics"].video_scores,
        predictions=module.test_outputs["predictions"],
        filenames=tested.filenames,
        gt_audio=tested.annotations.gt_audio,
        gt_visual=tested.annotations.gt_visual,
        metric_settings=module.metric_settings,
        protocol=module.test_metrics.protocol(
            split=split,
            audio_labels=cfg.data.audio_labels,
            annotation_files=tested.annotations.files,
        ),
        resolved_config=resolved_config,
        overrides=task_overrides(),
        checkpoint=checkpoint,
        extra=extra,
        published=run_published_row(cfg, module),
        console=Console(),
    )


def training_record(trainer: L.Trainer) -> dict[str, Any]:
    """How long a run trained and why it stopped, for ``metrics.json["training"]``:
    ``epochs`` validated, ``max_epochs``, ``best_epoch`` (1-based, the first epoch with the
    best score: the one the checkpoint callback keeps and the test uses), ``stopping`` (the
    rule in words), ``stopped_early`` and ``val_seg_type`` (the score of every epoch).
    ``avvp-report`` states a sweep's regime from these. Taken right after ``fit``: testing
    a checkpoint restores the callbacks' states of that epoch."""
    curve = next((c for c in trainer.callbacks if isinstance(c, ValidationCurve)), None)
    scores = list(curve.scores) if curve is not None else []
    early = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
    if early is None:
        stopping = f"fixed length ({trainer.max_epochs} epochs)"
    else:
        stopping = (
            f"early stopping on {early.monitor} ({early.mode}, patience {early.patience}, "
            f"min_delta {abs(float(early.min_delta)):g}) within {trainer.max_epochs} epochs"
        )
    return {
        "epochs": len(scores),
        "max_epochs": trainer.max_epochs,
        "best_epoch": int(np.argmax(scores)) + 1 if scores else None,
        "stopping": stopping,
        "stopped_early": bool(early is not None and early.stopped_epoch > 0),
        "val_seg_type": scores,
    }


def run_published_row(cfg: DictConfig, module: AVVPModule) -> PublishedRow | None:
    """The published row of the network's method (its config's ``name``) on the run's
    feature set, for real data only (the built-in synthetic data, ``data.synthetic`` set,
    has no published numbers)."""
    if cfg.data.get("synthetic") is not None:
        return None
    name = (module.network_config or {}).get("name")
    return published_row(name, cfg.data.get("feature_set"))
