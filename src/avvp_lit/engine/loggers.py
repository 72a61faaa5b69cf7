"""The W&B logger of a run: offline unless ``WANDB_MODE`` says otherwise, and the jobs of
one Hydra multirun sweep in one W&B group named after the sweep directory, tagged with
their overrides (``wandb_group_and_tags``), so an ablation table can be rebuilt by
grouping in the W&B UI."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger

MAX_GROUP_LENGTH = 128
MAX_TAG_LENGTH = 64


def wandb_group_and_tags() -> tuple[str | None, list[str]]:
    """The W&B group and tags of the current Hydra job.

    In a multirun the group is the sweep directory (all jobs of one sweep share it) and
    the tags are the job's overridden options, so an ablation table can be rebuilt by
    grouping in the W&B UI; a single run gets its overrides as tags and no group.
    Outside a Hydra app: ``(None, [])``.
    """
    if not HydraConfig.initialized():
        return None, []
    hydra_cfg = HydraConfig.get()
    tags = [str(o)[:MAX_TAG_LENGTH] for o in hydra_cfg.overrides.task]
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None, tags
    return str(hydra_cfg.sweep.dir)[-MAX_GROUP_LENGTH:], tags


def wandb_logger(
    *,
    save_dir: str | Path,
    project: str = "avvp-lit",
    mode: str | None = None,
    group: str | None = None,
    tags: Sequence[str] | None = None,
    name: str | None = None,
    log_model: bool | str = False,
    **kwargs: Any,
) -> WandbLogger:
    """A ``WandbLogger`` writing under ``save_dir/wandb``; offline unless told otherwise.

    ``mode`` (``offline``, ``online``, ``disabled``) defaults to ``$WANDB_MODE``, else
    ``offline``: no network and no account are needed, and ``wandb sync`` uploads the
    run later. ``group``/``tags`` default to ``wandb_group_and_tags()``. A W&B run still
    open from an earlier job of this process (Hydra's basic launcher runs a sweep's jobs
    in one process) is finished first, so each job gets its own run.
    """
    import wandb

    if wandb.run is not None:
        wandb.finish()
    auto_group, auto_tags = wandb_group_and_tags()
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        save_dir=str(save_dir),
        project=project,
        mode=mode or os.environ.get("WANDB_MODE") or "offline",
        group=group or auto_group,
        tags=list(tags) if tags is not None else auto_tags,
        name=name,
        log_model=log_model,
        **kwargs,
    )
    if logger._wandb_init.get("anonymous") is None:
        # Lightning passes anonymous=None, which W&B answers with a deprecation warning
        logger._wandb_init.pop("anonymous", None)
    return logger


def wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


__all__ = ["wandb_group_and_tags", "wandb_logger", "wandb_loggers"]
