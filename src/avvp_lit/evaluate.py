"""`avvp-evaluate ckpt=PATH [data=...] [split=val|test]`: score an existing checkpoint.

``ckpt`` is a checkpoint written by `avvp-train` (the network config travels inside it)
or a network file written by `avvp-convert` from the original code's weights. The run
directory receives the same result files as a training run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf
from torch import nn

from avvp_lit.models.loading import read_network
from avvp_lit.module import AVVPModule
from avvp_lit.run import (
    ConfigError,
    build_trainer,
    prepare_network,
    run_task,
    validate_config,
    write_resolved_config,
    write_tested_split,
)
from avvp_lit.utils.errors import run_hydra_app


def load_network(
    path: str | Path, trusted_blocks: Sequence[str] = ()
) -> tuple[nn.Module, dict[str, Any]]:
    """The network stored at ``ckpt`` (an `avvp-train` checkpoint or an `avvp-convert`
    network file) and its model config, read without running code from the file
    (:func:`avvp_lit.models.loading.read_network`); ``trusted_blocks``: ``_target_``
    names of the user's own blocks to allow."""
    loaded = read_network(path, trusted=tuple(trusted_blocks))
    return loaded.network, loaded.model_config


def evaluate(cfg: DictConfig) -> dict[str, Any] | None:
    """Score ``cfg.ckpt`` on ``cfg.split``; returns metrics.json's content."""
    if cfg.split not in ("val", "test"):
        raise ConfigError(f"split={cfg.split!r} is not allowed; choose one of val, test")
    validate_config(cfg)
    network, network_config = load_network(cfg.ckpt, cfg.get("trusted_blocks") or ())
    stored = network_config.get("feature_set")
    if stored is not None and stored != cfg.data.feature_set:
        raise ConfigError(
            f"ckpt={cfg.ckpt} holds a network for {stored!r} features, but "
            f"data.feature_set={cfg.data.feature_set!r}: choose data with {stored} features"
        )
    L.seed_everything(cfg.seed, workers=True)
    prepare_network(network, cfg)
    metrics = OmegaConf.to_container(cfg.metrics, resolve=True)
    module = AVVPModule(network=network, metrics=metrics, network_config=network_config)
    datamodule = hydra.utils.instantiate(cfg.data, test_split=cfg.split)
    trainer = build_trainer(cfg)
    resolved = write_resolved_config(cfg, trainer)
    trainer.test(module, datamodule=datamodule, verbose=False)
    if not trainer.is_global_zero:
        return None
    return write_tested_split(
        cfg,
        module,
        datamodule,
        split=cfg.split,
        model_label=Path(cfg.ckpt).name,
        resolved_config=resolved,
        checkpoint=str(cfg.ckpt),
    )


@hydra.main(version_base="1.3", config_path="pkg://avvp_lit.conf", config_name="evaluate")
def _hydra_main(cfg: DictConfig) -> None:
    run_task("avvp-evaluate", evaluate, cfg)


def main() -> None:
    run_hydra_app("avvp-evaluate", _hydra_main)


if __name__ == "__main__":
    main()
