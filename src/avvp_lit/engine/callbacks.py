"""Lightning callbacks and plugins that belong to no single model."""

from __future__ import annotations

import random
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count

from avvp_lit.utils.atomic import atomic_path
from avvp_lit.utils.progress import EVERY_S, clock, log


class EpochSeeding(L.Callback):
    """Re-seed every RNG at each training epoch's first batch from (seed, epoch, rank).

    An epoch's randomness (dropout, augmentation) then depends only on the state at its
    start, so a run resumed from an end-of-epoch ``last.ckpt`` replays the next epochs
    exactly and reaches the same final weights and metrics as an uninterrupted run. The
    first batch, not ``on_train_epoch_start``: the DataLoader draws its base seed from the
    global RNG when its iterator is made, which a resumed run does before that hook and
    an uninterrupted run after it.
    """

    def __init__(self, *, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx != 0:
            return
        value = (self.seed * 100_003 + trainer.current_epoch * 1_009 + trainer.global_rank) % 2**31
        random.seed(value)
        np.random.seed(value)  # noqa: NPY002 (the global state is what user code draws from)
        torch.manual_seed(value)


class ValidationCurve(L.Callback):
    """The model-selection score of every validation pass, in epoch order, kept in the
    checkpoints (``state_dict``), so that a resumed run reports the whole curve and the
    epoch its tested checkpoint came from. ``training_record`` puts it in a run's
    ``metrics.json``, where ``avvp-report`` reads how long each job trained."""

    def __init__(self, *, monitor: str = "val/seg_type") -> None:
        self.monitor = monitor
        self.scores: list[float] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        self.scores.append(float(trainer.callback_metrics[self.monitor]))

    def state_dict(self) -> dict[str, Any]:
        return {"scores": list(self.scores)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.scores = list(state_dict.get("scores", []))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints appear under their final name only when completely written (a
    temporary sibling, synced, then renamed): a crash or a full disk never leaves a
    truncated ``epoch_*.ckpt`` or ``last.ckpt``, and the previous ``last.ckpt`` stays
    readable until the new one replaces it."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with a ``last.ckpt`` of every finished epoch and a model
    selection that survives a resume into a new directory.

    Lightning (2.6) writes ``last.ckpt`` only at epochs that also saved a top-k checkpoint,
    so after an epoch that did not improve, ``last.ckpt`` holds an older epoch and a resume
    repeats work (and diverges from the uninterrupted run); here it is written at the end
    of every epoch.

    Lightning restores the best score only when the checkpoint directory is unchanged;
    resumed elsewhere (``avvp-train ckpt_path=<old run>/checkpoints/last.ckpt`` in a new
    run directory), the first epoch after the resume would always become "best" and
    another epoch be tested. Here the best score and the selection state are restored
    wherever the run continues, and the old run's best checkpoint is copied into the new
    directory, so the new run tests the epoch the uninterrupted run would test.
    """

    def _save_last_if_skipped(self, trainer: L.Trainer, eligible: bool) -> None:
        if eligible and self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        eligible = not (
            self._should_skip_saving_checkpoint(trainer)
            or self._should_save_on_train_epoch_end(trainer)
        )
        super().on_validation_end(trainer, pl_module)
        self._save_last_if_skipped(trainer, eligible)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        eligible = not self._should_skip_saving_checkpoint(
            trainer
        ) and self._should_save_on_train_epoch_end(trainer)
        super().on_train_epoch_end(trainer, pl_module)
        self._save_last_if_skipped(trainer, eligible)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A run resumed from a checkpoint with no epoch left to train (into a new
        directory, say; Lightning then skips the training hooks) still leaves its own
        ``last.ckpt``, so it can be continued from its own folder like every finished run."""
        super().on_fit_end(trainer, pl_module)
        if trainer.interrupted or trainer.fast_dev_run or not self.save_last or not self.dirpath:
            return
        candidates = self._monitor_candidates(trainer)
        if not Path(self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)).exists():
            self._save_last_checkpoint(trainer, candidates)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old_dir = state_dict.get("dirpath", self.dirpath)
        if self.dirpath is None or old_dir == self.dirpath:
            super().load_state_dict(state_dict)
            return
        self.best_model_score = state_dict["best_model_score"]
        self.kth_value = state_dict.get("kth_value", self.kth_value)
        best = state_dict.get("best_model_path") or ""
        self.best_model_path = best
        if best and Path(best).is_file():
            copied = Path(self.dirpath) / Path(best).name
            with atomic_path(copied) as tmp:
                shutil.copyfile(best, tmp)
            self.best_model_path = str(copied)
            self.best_k_models = {str(copied): self.best_model_score}
            self.kth_best_model_path = str(copied)
        elif best:
            warnings.warn(
                f"the best checkpoint of the resumed run, {best}, is gone: the test will use "
                "the best epoch of the remaining ones",
                stacklevel=2,
            )


class ParameterSummary(ModelSummary):
    """The model summary a user reads: each block with its parameter count, then the
    trainable and total counts. Lightning's FLOPs column and total are left out: they
    are 0 unless a forward pass is traced, which this summary does not do."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from rich.console import Console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name in SUMMARY_COLUMNS]
        table = Table(title="model")
        for name, _ in columns:
            table.add_column(name, justify="right" if name == "Params" else "left")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = Console()
        console.print(table)
        console.print(
            f"{get_human_readable_count(trainable_parameters)} trainable parameters of "
            f"{get_human_readable_count(total_parameters)} ({model_size:.1f} MB)",
            highlight=False,
        )


SUMMARY_COLUMNS = ("Name", "Type", "Params")


class LineProgress(ProgressBar):
    """Progress as plain log lines for runs without a terminal (``make train > log``,
    SLURM, nohup), where a live bar shows only its last frame: every ``every_s`` seconds
    and at each epoch's end, ``epoch e/E step i/N loss x, v videos/s, t left in the
    epoch``, and each validation's model-selection score. The lines go through the
    ``avvp_lit.utils.progress`` logger, so Hydra's job log (``<run dir>/train.log``) holds
    them too."""

    def __init__(self, *, every_s: float = EVERY_S) -> None:
        super().__init__()
        self.every_s = every_s
        self._enabled = True
        self._epoch_start = self._last = 0.0
        self._videos = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = self._last = time.perf_counter()
        self._videos = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        self._videos += len(batch["index"]) if isinstance(batch, dict) else 0
        now = time.perf_counter()
        total = self.total_train_batches
        last = isinstance(total, int) and batch_idx + 1 >= total
        if now - self._last < self.every_s and not last:
            return
        self._last = now
        elapsed = now - self._epoch_start
        done = batch_idx + 1
        loss = trainer.callback_metrics.get("train/total")
        parts = [
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
            f"step {done}/{total}",
        ]
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        parts.append(f"{self._videos / max(elapsed, 1e-9):.1f} videos/s")
        if isinstance(total, int) and total > 0:
            parts.append(f"{clock(elapsed / done * (total - done))} left in the epoch")
        log.info("  ".join(parts))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self._enabled and trainer.is_global_zero) or trainer.sanity_checking:
            return
        score = trainer.callback_metrics.get("val/seg_type")
        if score is not None:
            log.info(
                f"epoch {trainer.current_epoch + 1} validation: seg Type@AV {float(score):.2f}"
            )
