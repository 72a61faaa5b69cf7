"""A run directory's life: locked while a task runs, removed when bad input stopped the
task before it produced anything, pointed to by ``outputs/<task>/latest`` when it
finished, and holding the resolved config of the run."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from avvp_lit.utils.atomic import atomic_write_bytes, temporary_sibling
from avvp_lit.utils.console import quiet_third_party
from avvp_lit.utils.errors import EXIT_BAD_INPUT, InputError, exit_on_input_error, task_started
from avvp_lit.utils.lock import LOCK_NAME, run_directory_lock

Result = TypeVar("Result")


def run_task(program: str, task: Callable[[DictConfig], Result], cfg: DictConfig) -> Result:
    """``task(cfg)`` inside a Hydra app, holding the run directory's lock
    (:mod:`avvp_lit.utils.lock`): bad input (a :class:`ConfigError`, an annotation, feature
    or checkpoint error, an unreadable file, a directory in use) ends ``program`` with one
    line and exit status 2 (:mod:`avvp_lit.utils.errors`)."""
    task_started()
    quiet_third_party()
    return exit_on_input_error(program, _locked, task, cfg)


def _locked(task: Callable[[DictConfig], Result], cfg: DictConfig) -> Result:
    """Run ``task`` holding the run directory's lock (global rank 0; other ranks of a
    multi-process run share their launcher's directory). The lock is taken before the
    clean-up guard, so a folder another process holds is never touched."""
    run_dir = OmegaConf.select(cfg, "paths.output_dir") or cfg.get("output_dir")
    if run_dir is None or rank_zero_only.rank != 0:
        return task(cfg)
    with run_directory_lock(run_dir):
        try:
            result = task(cfg)
        except InputError:
            discard_failed_run(Path(run_dir))
            raise
    point_latest(Path(run_dir))
    return result


HYDRA_ONLY = {".hydra", LOCK_NAME}
RESOLVED_CONFIG = "config.yaml"
EMPTY_UNLESS_RESULTS = {"checkpoints", "figures"}
# logger folders, and the files in them that mean something was logged (then kept)
LOGGED: dict[str, str] = {
    "csv": "metrics.csv",
    "wandb": "*run-*",
    "tensorboard": "events.out.tfevents*",
}


def _disposable(entry: Path) -> bool:
    """Nothing of value: Hydra's files, logs, the resolved config, logger folders in
    which nothing was logged, empty checkpoint and figure folders."""
    if entry.name in HYDRA_ONLY:
        return True
    if entry.is_file():
        return entry.suffix == ".log" or entry.name == RESOLVED_CONFIG
    if entry.name in LOGGED:
        return not any(entry.rglob(LOGGED[entry.name]))
    return entry.name in EMPTY_UNLESS_RESULTS and not any(p.is_file() for p in entry.rglob("*"))


def remove_if_untouched(run_dir: Path) -> None:
    """Delete a run folder that holds nothing but what Hydra, the loggers and the config
    writer put there before the task produced anything (no checkpoint, figure, result or
    logged metric): a run stopped by bad input leaves no folder behind."""
    if not run_dir.is_dir():
        return
    if all(_disposable(entry) for entry in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def discard_failed_run(run_dir: Path) -> None:
    """After bad input stopped a task: finish the W&B run this attempt opened and, when
    nothing was logged to it (bad input found before training), delete it from
    ``run_dir`` so ``wandb sync`` never uploads it; then drop the run folder when nothing
    of value is in it (:func:`remove_if_untouched`). Earlier attempts' checkpoints and
    W&B runs, and any run that logged metrics, are kept."""
    wandb = sys.modules.get("wandb")
    run = None if wandb is None else wandb.run
    if run is not None:
        attempt = Path(run.dir).parent  # <run_dir>/wandb/offline-run-<time>-<id>
        logged = run.step > 0 or any(not k.startswith("_") for k in run.summary.keys())
        wandb.finish(exit_code=EXIT_BAD_INPUT)
        inside = attempt.resolve().is_relative_to(run_dir.resolve())
        if inside and not logged:
            shutil.rmtree(attempt, ignore_errors=True)
    remove_if_untouched(run_dir)


def point_latest(run_dir: Path) -> Path | None:
    """``outputs/<task>/latest`` -> the run that just finished (a relative link, replaced
    atomically), for runs in Hydra's ``outputs/<task>/runs/<time>`` layout."""
    if run_dir.parent.name != "runs":
        return None
    link = run_dir.parent.parent / "latest"
    tmp = temporary_sibling(link)
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(Path("runs") / run_dir.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:  # a file system without links: the pointer is a convenience
        tmp.unlink(missing_ok=True)
        return None
    return link


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def write_resolved_config(cfg: DictConfig, trainer: L.Trainer) -> str:
    """The fully resolved config as YAML, written to ``config.yaml`` and logged as the
    hyperparameters of every logger of the run (rank 0 only)."""
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    if trainer.is_global_zero:
        atomic_write_bytes(output_dir(cfg) / RESOLVED_CONFIG, resolved.encode())
        config = OmegaConf.to_container(cfg, resolve=True)
        for logger in trainer.loggers:
            logger.log_hyperparams(config)
    return resolved


def task_overrides() -> list[str]:
    """The command-line overrides of this run (empty outside a Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)
