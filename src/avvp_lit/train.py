"""`avvp-train` (= ``python -m avvp_lit.train``): fit, then test the best checkpoint.

Model selection follows every published recipe: the epoch with the best validation
segment-level Type@AV (``val/seg_type``). The run directory receives the checkpoints,
``config.yaml`` (resolved), ``metrics.json``, ``predictions.npz`` and ``summary.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig
from rich.console import Console

from avvp_lit.models.loading import check_weights_fit, checkpoint_network_state, load_payload
from avvp_lit.module import AVVPModule
from avvp_lit.run import (
    ConfigError,
    build_module,
    build_trainer,
    run_task,
    validate_config,
    write_resolved_config,
    write_tested_split,
)
from avvp_lit.utils.errors import run_hydra_app


def check_resume_checkpoint(path: str, module: AVVPModule) -> None:
    """Before any work: ``ckpt_path`` is an `avvp-train` checkpoint (read with
    ``weights_only=True``) whose weights fit this run's network."""
    payload = load_payload(path)
    state = checkpoint_network_state(payload, source=path)
    check_weights_fit(module.network, state, source=path)
    if "loops" not in payload or "optimizer_states" not in payload:
        raise ConfigError(f"ckpt_path={path}: a weights-only checkpoint cannot resume training")


def train(cfg: DictConfig) -> dict[str, Any] | None:
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
        extra={"val_seg_type_best": None if best_val is None else float(best_val)},
    )


@hydra.main(version_base="1.3", config_path="pkg://avvp_lit.conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    payload = run_task("avvp-train", train, cfg)
    # the Optuna sweeper maximises this: the model-selection score, never a test number
    return None if payload is None else payload["val_seg_type_best"]


def main() -> None:
    run_hydra_app("avvp-train", _hydra_main)


if __name__ == "__main__":
    main()
