"""What a researcher looks at after a run: the ``Dashboard`` callback.

``Dashboard`` writes figures into the run's ``figures/`` folder whatever the logger,
and logs the same figures to W&B when a ``WandbLogger`` is attached (global rank 0
only): every few epochs a parsing timeline for a fixed handful of validation videos
and, for class-wise models, the SECM co-occurrence attention maps; at the end of
testing a per-class F1 table and bar charts. Loss terms and the ten validation numbers
are logged by ``AVVPModule`` itself; the W&B logger is built in
:mod:`avvp_lit.engine.loggers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import default_collate

from avvp_lit.classes import CLASSES, PREDICTION_KEYS
from avvp_lit.engine.loggers import wandb_loggers
from avvp_lit.inference import (
    binarize_time_major,
    forward_eval,
    mean_attention,
    protocol_thresholds,
)
from avvp_lit.metrics.functional import CLASS_F1_KEYS, LEVEL_TITLES
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.viz.figures import attention_figure, class_f1_figure, save_png, timeline_figure

# --------------------------------------------------------------------------- the callback


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80]


def _first_dataloader(loaders: Any) -> Any:
    if isinstance(loaders, Sequence):
        return loaders[0] if loaders else None
    return loaders


class Dashboard(L.Callback):
    """Figures of a run in ``figures_dir`` (always) and on W&B (when a WandbLogger is set).

    - every ``every_n_epochs`` validation epochs, and the last: the model is run (eval
      mode, no grad, one batch) on the first ``num_videos`` validation videos; a
      timeline per video (ground truth beside prediction) and, when the output has
      ``attn_maps``, the maps averaged over those videos' segments.
    - ``on_test_end``: per-class F1 from ``pl_module.test_outputs["diagnostics"]`` as a
      CSV, two grouped-bar PNGs (segment and event level), a W&B table and bar charts.

    Everything happens on global rank 0 only; ``fast_dev_run`` draws nothing.
    """

    def __init__(
        self,
        *,
        figures_dir: str | Path,
        every_n_epochs: int = 4,
        num_videos: int = 4,
        dpi: int = 100,
    ) -> None:
        if every_n_epochs < 1 or num_videos < 0:
            raise ValueError("every_n_epochs must be >= 1 and num_videos >= 0")
        self.figures_dir = Path(figures_dir)
        self.every_n_epochs = every_n_epochs
        self.num_videos = num_videos
        self.dpi = dpi

    def _active(self, trainer: L.Trainer) -> bool:
        return trainer.is_global_zero and not trainer.fast_dev_run

    # ----------------------------------------------------------------- validation

    def _due(self, trainer: L.Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        limit = trainer.max_epochs
        return epoch % self.every_n_epochs == 0 or (limit is not None and 0 < limit <= epoch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._active(trainer) or not self._due(trainer):
            return
        if not self.num_videos:
            return
        loader = _first_dataloader(trainer.val_dataloaders)
        if loader is None or len(loader.dataset) == 0:
            return
        snapshot = self.validation_snapshot(pl_module, loader.dataset)
        paths = self.write_validation_figures(snapshot, trainer.current_epoch)
        self.log_validation_media(trainer, snapshot, paths)

    def validation_snapshot(self, pl_module: L.LightningModule, dataset: Any) -> dict[str, Any]:
        """Run the model on the first ``num_videos`` items of ``dataset``.

        Returns ``filenames``; ``gt_audio``, ``gt_visual``, ``pred_audio``,
        ``pred_visual``, ``prob_audio``, ``prob_visual`` (k, 10, 25) numpy arrays; and
        ``attention`` {key: (25, 25)} averaged over videos and seconds, or None; and the
        protocol's ``segment_threshold`` (2, 25).
        """
        count = min(self.num_videos, len(dataset))
        batch = default_collate([dataset[i] for i in range(count)])
        batch = {k: v.to(pl_module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        output = forward_eval(pl_module.network, batch)
        probabilities = {k: getattr(output, k).detach().float().cpu() for k in PREDICTION_KEYS}
        settings = getattr(pl_module, "metric_settings", None) or {}
        pred_audio, pred_visual = binarize_time_major(probabilities, settings)
        frame = probabilities["frame_prob"].numpy()
        names = getattr(dataset, "filenames", None)
        return {
            "filenames": [names[i] if names else f"video {i}" for i in range(count)],
            "gt_audio": batch["gt_audio"].cpu().numpy(),
            "gt_visual": batch["gt_visual"].cpu().numpy(),
            "pred_audio": pred_audio,
            "pred_visual": pred_visual,
            "prob_audio": frame[:, :, 0],
            "prob_visual": frame[:, :, 1],
            "attention": mean_attention(getattr(output, "attn_maps", None)),
            "segment_threshold": protocol_thresholds(settings)[1],
        }

    def write_validation_figures(
        self, snapshot: Mapping[str, Any], epoch: int
    ) -> dict[str, list[Path]]:
        """Timelines (one PNG per video) and the attention heatmaps of one epoch."""
        folder = self.figures_dir / f"epoch_{epoch:03d}"
        timelines = []
        for i, name in enumerate(snapshot["filenames"]):
            fig = timeline_figure(
                name,
                *(snapshot[k][i] for k in ("gt_audio", "gt_visual", "pred_audio", "pred_visual")),
                snapshot["prob_audio"][i],
                snapshot["prob_visual"][i],
                segment_threshold=snapshot["segment_threshold"],
                title=f"{name} (validation, epoch {epoch})",
            )
            path = folder / f"timeline_{i:02d}_{_safe_name(name)}.png"
            timelines.append(save_png(fig, path, dpi=self.dpi))
        paths = {"timeline": timelines, "attention": []}
        if snapshot["attention"] is not None:
            count = len(snapshot["filenames"])
            fig = attention_figure(
                snapshot["attention"],
                title=f"SECM co-occurrence attention, epoch {epoch} "
                f"(mean over {count} validation videos x 10 s)",
            )
            paths["attention"].append(save_png(fig, folder / "attention.png", dpi=self.dpi))
        return paths

    def log_validation_media(
        self,
        trainer: L.Trainer,
        snapshot: Mapping[str, Any],
        paths: Mapping[str, list[Path]],
    ) -> None:
        for logger in wandb_loggers(trainer):
            for i, (path, name) in enumerate(
                zip(paths["timeline"], snapshot["filenames"], strict=True)
            ):
                logger.log_image(
                    f"val/timeline/{i:02d}", [str(path)], step=trainer.global_step, caption=[name]
                )
            if paths["attention"]:
                logger.log_image(
                    "val/attention", [str(paths["attention"][0])], step=trainer.global_step
                )

    # ----------------------------------------------------------------- test

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active(trainer):
            return
        diagnostics = getattr(pl_module, "test_outputs", {}).get("diagnostics")
        if diagnostics is None:
            return
        class_f1 = {key: np.asarray(diagnostics.class_f1[key]) for key in CLASS_F1_KEYS}
        paths = self.write_test_figures(class_f1)
        self.log_test_media(trainer, class_f1, paths)

    def write_test_figures(self, class_f1: Mapping[str, np.ndarray]) -> dict[str, Path]:
        """``test/class_f1.csv`` and one grouped-bar PNG per level."""
        folder = self.figures_dir / "test"
        rows = ["class," + ",".join(CLASS_F1_KEYS)]
        for k, name in enumerate(CLASSES):
            rows.append(
                name + "," + ",".join(_csv_number(class_f1[key][k]) for key in CLASS_F1_KEYS)
            )
        atomic_write_bytes(folder / "class_f1.csv", ("\n".join(rows) + "\n").encode())
        return {
            level: save_png(
                class_f1_figure(class_f1, level=level, title=f"test per-class F1, {title}"),
                folder / f"class_f1_{level}.png",
                dpi=self.dpi,
            )
            for level, title in LEVEL_TITLES.items()
        }

    def log_test_media(
        self,
        trainer: L.Trainer,
        class_f1: Mapping[str, np.ndarray],
        paths: Mapping[str, Path],
    ) -> None:
        loggers = wandb_loggers(trainer)
        if not loggers:
            return
        import wandb

        columns = ["class", *CLASS_F1_KEYS]
        data = [
            [name, *(_table_number(class_f1[key][k]) for key in CLASS_F1_KEYS)]
            for k, name in enumerate(CLASSES)
        ]
        for logger in loggers:
            table = wandb.Table(columns=columns, data=data)
            charts = {
                f"test/class_f1_bar/{key}": wandb.plot.bar(
                    table, "class", key, title=f"test per-class F1 ({key}, %)"
                )
                for key in ("seg_a", "seg_v", "seg_av")
            }
            images = {
                f"test/class_f1_{level}": wandb.Image(str(path)) for level, path in paths.items()
            }
            logger.experiment.log(
                {
                    "test/class_f1": table,
                    **charts,
                    **images,
                    "trainer/global_step": trainer.global_step,
                }
            )


def _csv_number(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.2f}"


def _table_number(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 2)


__all__ = ["Dashboard"]
