"""Building a run from a composed config: the LightningModule (network, loss, optimiser,
metrics) checked before any data is read, and the Trainer with its callbacks and
loggers. Shared by the train and evaluate jobs and the benchmarks."""

from __future__ import annotations

import sys
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import RichProgressBar
from omegaconf import DictConfig, OmegaConf
from torch import nn

from avvp_lit.classes import NUM_CLASSES
from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.engine.callbacks import AtomicCheckpointIO, LineProgress, ValidationCurve
from avvp_lit.engine.execution import choose_blocks, compile_if_asked
from avvp_lit.engine.module import AVVPModule
from avvp_lit.inference import forward_eval
from avvp_lit.losses import MissingLossInput
from avvp_lit.utils.errors import ConfigError, one_line


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate each entry with a ``_target_`` of a callbacks/logger group."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def probe_batch(
    feature_set: str, videos: int = 2, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """A zero batch in the layout of a training batch of ``feature_set`` (features,
    pseudo labels where the set has them, weak labels, indices)."""
    batch = {
        key: torch.zeros((videos, *shape), dtype=dtype)
        for key, shape in FEATURE_SETS[feature_set].shapes.items()
    }
    batch["label"] = torch.zeros(videos, NUM_CLASSES, dtype=dtype)
    batch["index"] = torch.arange(videos)
    return batch


def check_loss_inputs(network: nn.Module, loss: nn.Module, feature_set: str | None) -> None:
    """Run the network and the loss once on a two-video zero batch, so that a block
    choice that does not produce what a loss term needs (``model/secm=none`` with the
    co-occurrence term on), or a network that does not fit the features, is a named
    config error when the run is built rather than a traceback at the first step.

    The probe runs in eval mode without gradients and leaves the random number
    generators as it found them, so a run's numbers do not depend on it.
    """
    if feature_set not in FEATURE_SETS:
        return
    parameter = next(network.parameters(), None)
    batch = probe_batch(feature_set, dtype=torch.float32 if parameter is None else parameter.dtype)
    with torch.random.fork_rng(devices=[]):
        try:
            output = forward_eval(network, batch)
        except RuntimeError as error:
            raise ConfigError(
                f"the network of model={type(network).__name__} does not run on "
                f"data.feature_set={feature_set} features: {one_line(error, 300)}"
            ) from None
        try:
            with torch.no_grad():
                loss(output, batch)
        except MissingLossInput as error:
            raise ConfigError(f"the blocks and the loss do not fit: {error}") from None


def build_module(cfg: DictConfig, network: nn.Module | None = None) -> AVVPModule:
    """The LightningModule of ``cfg``: its loss, optimiser, scheduler and metrics around
    ``network`` (default: a fresh one from ``cfg.model``). The network gets the blocks it
    will train with (:func:`~avvp_lit.engine.execution.choose_blocks`), is checked
    against the loss in that form (:func:`check_loss_inputs`), then compiled if asked."""
    network_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if network is None:
        network = instantiate(cfg.model)
    loss = instantiate(cfg.loss)
    choose_blocks(network, cfg)
    check_loss_inputs(network, loss, cfg.data.get("feature_set"))
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return AVVPModule(
        network=compile_if_asked(network, cfg),
        loss=loss,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        metrics=OmegaConf.to_container(cfg.metrics, resolve=True),
        network_config=network_cfg,
    )


def without_terminal(callbacks: list[Any]) -> list[Any]:
    """Without a terminal on stdout, the live progress bar becomes plain log lines."""
    if sys.stdout.isatty() or not any(isinstance(c, RichProgressBar) for c in callbacks):
        return callbacks
    return [c for c in callbacks if not isinstance(c, RichProgressBar)] + [LineProgress()]


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the run's callbacks and loggers; checkpoints
    are written atomically (:class:`~avvp_lit.engine.callbacks.AtomicCheckpointIO`)."""
    callbacks = without_terminal(instantiate_group(cfg.get("callbacks"))) + [ValidationCurve()]
    loggers = instantiate_group(cfg.get("logger"))
    plugins = [instantiate(p) for p in cfg.trainer.get("plugins") or []]
    plugins.append(AtomicCheckpointIO())
    return instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins, **overrides
    )
