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

from avvp_lit.run import (
    build_module,
    build_trainer,
    exit_on_config_error,
    validate_config,
    write_resolved_config,
    write_tested_split,
)


def train(cfg: DictConfig) -> dict[str, Any] | None:
    """Run one training job from a composed config; returns metrics.json's content."""
    validate_config(cfg)
    console = Console()
    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = build_module(cfg)
    trainer = build_trainer(cfg)
    resolved = write_resolved_config(cfg, trainer)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    if trainer.interrupted:
        console.print("training interrupted: last.ckpt holds the last finished epoch")
        return None
    if not cfg.get("test"):
        return None
    checkpointing = trainer.checkpoint_callback
    best = checkpointing.best_model_path if checkpointing else ""
    best_val = checkpointing.best_model_score if checkpointing else None
    trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
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
    payload = exit_on_config_error("avvp-train", train, cfg)
    # the Optuna sweeper maximises this: the model-selection score, never a test number
    return None if payload is None else payload["val_seg_type_best"]


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
