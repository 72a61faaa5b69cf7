"""A fabricated ablation sweep in Hydra's multirun layout, as `avvp-train` jobs leave it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from avvp_lit.metrics import METRIC_NAMES, dataset_scores
from avvp_lit.metrics.video_scores import write_video_scores

PROTOCOL = {
    "gating": "global",
    "gate_audio": "global_prob",
    "gate_visual": "global_prob",
    "video_threshold": 0.5,
    "segment_threshold": 0.5,
    "class_thresholds": None,
    "comparison": ">=",
    "split": "test",
}
VIDEOS = [f"video_{i:02d}" for i in range(40)]
SHARED = ["ablation=components", "data.root=/data/x"]
# variant -> per-seed shift (fraction) added to the seed's base per-video scores; None: failed
SHIFT = {
    "full": {1: 0.0, 2: 0.0, 3: 0.0},
    "no_cafd": {1: -0.10, 2: -0.09, 3: -0.11},  # about -10 points, clearly resolved
    "tiny": {1: 0.004, 2: -0.004, 3: 0.001},  # +0.03 points: not resolved
    "han": {1: -0.20, 2: -0.21, 3: None},  # seed 3 failed: no metrics.json
}


MAX_EPOCHS = 8
RULE = "early stopping on val/seg_type (max, patience 2, min_delta 0) within 8 epochs"
SPLIT_SIZES = {"train": 100, "val": 30, "test": len(VIDEOS)}


def curve(variant: str, seed: int) -> list[float]:
    """A job's validation curve: rises to a peak at epoch ``3 + seed`` (``2 + seed`` for
    han), then falls for two epochs (early stopping, patience 2), capped at MAX_EPOCHS."""
    peak = 3 + seed - (variant == "han")
    epochs = min(peak + 2, MAX_EPOCHS)
    return [50.0 - 2.0 * abs(epoch - peak) + seed for epoch in range(1, epochs + 1)]


def training_record(variant: str, seed: int) -> dict:
    """The ``training`` entry of a job's metrics.json (engine.results.training_record)."""
    scores = curve(variant, seed)
    return {
        "epochs": len(scores),
        "max_epochs": MAX_EPOCHS,
        "best_epoch": int(np.argmax(scores)) + 1,
        "stopping": RULE,
        "stopped_early": len(scores) < MAX_EPOCHS,
        "val_seg_type": scores,
        "videos": SPLIT_SIZES,
    }


def base_scores(seed: int) -> np.ndarray:
    """(40, 10) per-video scores (fractions) of the reference at one seed."""
    return np.random.default_rng(seed).uniform(0.3, 0.7, (len(VIDEOS), len(METRIC_NAMES)))


def make_sweep(root: Path) -> Path:
    """Hydra's multirun layout: numbered job folders with .hydra/overrides.yaml, and what
    `avvp-train` writes into a finished job (metrics.json, video_scores.tsv)."""
    job = 0
    for variant, shifts in SHIFT.items():
        for seed, shift in shifts.items():
            folder = root / str(job)
            (folder / ".hydra").mkdir(parents=True)
            overrides = [*SHARED, f"variant={variant}", f"seed={seed}"]
            (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            if shift is not None:
                scores = base_scores(seed) + shift
                payload = {
                    **dataset_scores(scores),
                    "protocol": PROTOCOL,
                    "training": training_record(variant, seed),
                }
                (folder / "metrics.json").write_text(json.dumps(payload))
                write_video_scores(folder / "video_scores.tsv", 100 * scores, VIDEOS)
            job += 1
    return root
