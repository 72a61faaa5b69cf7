"""Composing the project's Hydra configs in tests (no network, W&B disabled)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict


def compose_config(name: str, overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    """The config `avvp-train`/`avvp-evaluate` would run with, writing under ``output_dir``.

    ``data_dir`` holds the generated synthetic datasets (shared across tests).
    """
    GlobalHydra.instance().clear()
    with initialize_config_module("avvp_lit.conf", version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
        cfg.data.progress = False
        del cfg.hydra
    return cfg
