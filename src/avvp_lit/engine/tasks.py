"""The jobs behind the Hydra apps: train (fit, then test the best checkpoint) and
evaluate (score a stored network). ``avvp-train``/``avvp-evaluate`` are thin shells
around these (:mod:`avvp_lit.cli`).

Model selection follows every published recipe: the epoch with the best validation
segment-level Type@AV (``val/seg_type``). The run directory receives the checkpoints,
``config.yaml`` (resolved), ``metrics.json``, ``predictions.npz``, ``video_scores.tsv``
and ``summary.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from avvp_lit.engine.builders import build_module, build_trainer
from avvp_lit.engine.execution import prepare_network
from avvp_lit.engine.module import AVVPModule
from avvp_lit.engine.results import training_record, write_tested_split
from avvp_lit.engine.rundir import write_resolved_config
from avvp_lit.engine.validation import validate_config
from avvp_lit.models.loading import (
    check_weights_fit,
    checkpoint_network_state,
    load_payload,
    read_network,
)
from avvp_lit.utils.errors import ConfigError


def check_resume_checkpoint(path: str, module: AVVPModule) -> None:
    """Before any work: ``ckpt_path`` is an `avvp-train` checkpoint (read with
    ``weights_only=True``) whose weights fit this run's network."""
    payload = load_payload(path)
    state = checkpoint_network_state(payload, source=path)
    check_weights_fit(module.network, state, source=path)
    if "loops" not in payload or "optimizer_states" not in payload:
        raise ConfigError(f"ckpt_path={path}: a weights-only checkpoint cannot resume training")


def train_and_test(cfg: DictConfig) -> dict[str, Any] | None:
    """Run one training job from a composed config; returns metrics.json's content."""
    validate_config(cfg)
    console = Console()
    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = build_module(cfg)
    if cfg.get("ckpt_path"):
        check_resume_checkpoint(cfg.ckpt_path, module)
    trainer = build_trainer(cfg)
    resolved = write_resolved_config(cfg, trainer)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    if trainer.interrupted:
        console.print("training interrupted: last.ckpt holds the last finished epoch")
        return None
    if not cfg.get("test"):
        return None
    training = training_record(trainer)
    checkpointing = trainer.checkpoint_callback
    best = checkpointing.best_model_path if checkpointing else ""
    best_val = checkpointing.best_model_score if checkpointing else None
    trainer.test(
        module, datamodule=datamodule, ckpt_path=best or None, verbose=False, weights_only=True
    )
    if not trainer.is_global_zero:
        return None
    return write_tested_split(
        cfg,
        module,
        datamodule,
        split="test",
        model_label=cfg.model.get("name", "model"),
        resolved_config=resolved,
        checkpoint=str(Path(best)) if best else None,
        extra={
            "val_seg_type_best": None if best_val is None else float(best_val),
            "training": {
                **training,
                "videos": {split: len(data) for split, data in datamodule.datasets.items()},
            },
        },
    )


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any] | None:
    """Score ``cfg.ckpt`` on ``cfg.split``; returns metrics.json's content."""
    if cfg.split not in ("val", "test"):
        raise ConfigError(f"split={cfg.split!r} is not allowed; choose one of val, test")
    validate_config(cfg)
    loaded = read_network(cfg.ckpt, trusted=tuple(cfg.get("trusted_blocks") or ()))
    network, network_config = loaded.network, loaded.model_config
    stored = network_config.get("feature_set")
    if stored is not None and stored != cfg.data.feature_set:
        raise ConfigError(
            f"ckpt={cfg.ckpt} holds a network for {stored!r} features, but "
            f"data.feature_set={cfg.data.feature_set!r}: choose data with {stored} features"
        )
    L.seed_everything(cfg.seed, workers=True)
    prepare_network(network, cfg)
    metrics = OmegaConf.to_container(cfg.metrics, resolve=True)
    module = AVVPModule(network=network, metrics=metrics, network_config=network_config)
    datamodule = hydra.utils.instantiate(cfg.data, test_split=cfg.split)
    trainer = build_trainer(cfg)
    resolved = write_resolved_config(cfg, trainer)
    trainer.test(module, datamodule=datamodule, verbose=False)
    if not trainer.is_global_zero:
        return None
    return write_tested_split(
        cfg,
        module,
        datamodule,
        split=cfg.split,
        model_label=Path(cfg.ckpt).name,
        resolved_config=resolved,
        checkpoint=str(cfg.ckpt),
    )
