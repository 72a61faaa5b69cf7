"""Building a run from a composed config, shared by `avvp-train` and `avvp-evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.metrics import GATINGS
from avvp_lit.module import AVVPModule


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the allowed values."""


def _require_choice(cfg: DictConfig, key: str, allowed: tuple[str, ...]) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def validate_config(cfg: DictConfig) -> None:
    """Fail before any work on values whose mistakes would otherwise surface late."""
    _require_choice(cfg, "metrics.gating", GATINGS)
    _require_choice(cfg, "data.feature_set", tuple(FEATURE_SETS))
    _require_choice(cfg, "data.audio_labels", ("pre2024", "current"))
    _require_choice(cfg, "data.on_missing", ("error", "skip"))
    _require_choice(cfg, "data.store", ("auto", "npy", "h5"))
    expected = OmegaConf.select(cfg, "model.feature_set")
    if expected is not None and expected != cfg.data.feature_set:
        raise ConfigError(
            f"model.feature_set={expected!r} but data.feature_set={cfg.data.feature_set!r}: "
            f"choose model/projection={cfg.data.feature_set} (or data with {expected} features)"
        )
    terms = OmegaConf.select(cfg, "loss.terms") or {}
    if "pseudo_label" in terms and not FEATURE_SETS[cfg.data.feature_set].has_pseudo_labels:
        raise ConfigError(
            f"loss.terms.pseudo_label needs per-second pseudo labels, which feature set "
            f"{cfg.data.feature_set!r} does not have: drop it with ~loss.terms.pseudo_label, "
            "choose loss=han, or use the valor features"
        )
    if OmegaConf.is_missing(cfg.data, "root"):
        raise ConfigError("data.root is required for real LLP data: data.root=/path/to/llp")


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def task_overrides() -> list[str]:
    """The command-line overrides of this run (empty outside a Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate each entry with a ``_target_`` of a callbacks/logger group."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def build_module(cfg: DictConfig) -> AVVPModule:
    network_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return AVVPModule(
        network=instantiate(cfg.model),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        metrics=OmegaConf.to_container(cfg.metrics, resolve=True),
        network_config=network_cfg,
    )


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)
