"""Composing the project's Hydra configs in tests (no network, W&B disabled)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict


def compose_raw(
    overrides: Sequence[str], config_name: str | None = None, return_hydra_config: bool = False
) -> DictConfig:
    """The installed configs (``avvp_lit.conf``) composed as Hydra's ``compose`` does."""
    GlobalHydra.instance().clear()
    with initialize_config_module("avvp_lit.conf", version_base="1.3"):
        return compose(
            config_name=config_name,
            overrides=list(overrides),
            return_hydra_config=return_hydra_config,
        )


def compose_config(name: str, overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    """The config `avvp-train`/`avvp-evaluate` would run with, writing under ``output_dir``.

    ``data_dir`` holds the generated synthetic datasets (shared across tests).
    """
    cfg = compose_raw(overrides, name, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
        cfg.data.progress = False
        del cfg.hydra
    return cfg
