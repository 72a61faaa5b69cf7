"""The LightningModule: a parsing network (injected), its losses, metrics and optimiser.

It owns nothing else: the network comes from Hydra (`model=`), the loss terms from
`loss=`, the optimiser and scheduler as partials from `optimizer=` / `scheduler=`.
Validation logs the ten protocol numbers each epoch as ``val/<name>``; the test split
additionally collects every video's probabilities for ``predictions.npz``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import torch
from torch import nn

from avvp_lit.engine.predictions import PredictionCollector
from avvp_lit.metrics import METRIC_NAMES, AVVPMetrics
from avvp_lit.models.output import NETWORK_INPUTS

Batch = dict[str, torch.Tensor]


class AVVPModule(L.LightningModule):
    """Weakly supervised training and protocol evaluation of one parsing network.

    ``network(audio, visual, visual_st)`` returns an output with ``global_prob``,
    ``a_prob``, ``v_prob`` (B, 25) and ``frame_prob`` (B, 10, 2, 25); ``loss(output,
    batch)`` returns ``{term: weighted value, ..., "total": sum}``.
    ``network_config`` (the network's Hydra config) is stored in checkpoints so
    ``avvp-evaluate`` can rebuild the network without the run's config files. Without
    ``loss`` and ``optimizer`` the module can only evaluate.
    """

    def __init__(
        self,
        *,
        network: nn.Module,
        loss: nn.Module | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        network_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.metric_settings = dict(metrics or {})
        self.network_config = dict(network_config) if network_config is not None else None
        self.val_metrics = AVVPMetrics(**self.metric_settings)
        self.test_metrics = AVVPMetrics(**self.metric_settings)
        self.test_predictions = PredictionCollector()
        self.test_outputs: dict[str, Any] = {}

    def forward(self, batch: Batch) -> Any:
        return self.network(*(batch[k] for k in NETWORK_INPUTS))

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        terms = self.loss(self(batch), batch)
        size = len(batch["index"])
        for name, value in terms.items():
            self.log(f"train/{name}", value, batch_size=size, prog_bar=name == "total")
        return terms["total"]

    def _evaluate(self, batch: Batch, metric: AVVPMetrics) -> Any:
        output = self(batch)
        metric.update(
            output.global_prob,
            output.a_prob,
            output.v_prob,
            output.frame_prob,
            batch["gt_audio"],
            batch["gt_visual"],
            batch["index"],
        )
        return output

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        output = self._evaluate(batch, self.test_metrics)
        self.test_predictions.update(
            batch["index"],
            global_prob=output.global_prob,
            a_prob=output.a_prob,
            v_prob=output.v_prob,
            frame_prob=output.frame_prob,
        )

    def on_test_epoch_end(self) -> None:
        diagnostics = self.test_metrics.compute_diagnostics()
        values = self._log_metrics("test", self.test_metrics)
        self.test_outputs = {
            "metrics": values,
            "diagnostics": diagnostics,
            "predictions": self.test_predictions.compute(),
        }
        self.test_predictions.reset()

    def _log_metrics(self, stage: str, metric: AVVPMetrics) -> dict[str, float]:
        """Log the ten numbers (already synchronised across processes) and reset."""
        values = metric.compute()
        metric.reset()
        for name in METRIC_NAMES:
            self.log(f"{stage}/{name}", values[name], prog_bar=name == "seg_type")
        return values

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise RuntimeError("this AVVPModule was built for evaluation only (no optimizer)")
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["avvp_lit"] = {
            "network_config": self.network_config,
            "metrics": self.metric_settings,
        }
