"""`avvp-evaluate ckpt=PATH [data=...] [split=val|test]`: score an existing checkpoint.

``ckpt`` is a checkpoint written by `avvp-train` (the network config travels inside it)
or a network file written by `avvp-convert` from the original code's weights. The run
directory receives the same result files as a training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from avvp_lit.models.convert import is_network_file, network_from_payload
from avvp_lit.module import AVVPModule
from avvp_lit.run import (
    ConfigError,
    build_trainer,
    exit_on_config_error,
    prepare_network,
    write_resolved_config,
    write_tested_split,
)


def load_network(path: str | Path) -> tuple[nn.Module, dict[str, Any] | None]:
    """The network stored in ``path`` and its Hydra config.

    Accepts an `avvp-train` Lightning checkpoint or an `avvp-convert` network file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ckpt={path}: no such file")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if is_network_file(payload):
        loaded = network_from_payload(payload)
        return loaded.network, loaded.model_config
    if isinstance(payload, dict) and "avvp_lit" in payload and "state_dict" in payload:
        config = payload["avvp_lit"]["network_config"]
        network = hydra.utils.instantiate(config)
        prefix = "network."
        state = {
            k[len(prefix) :]: v for k, v in payload["state_dict"].items() if k.startswith(prefix)
        }
        network.load_state_dict(state)
        return network, config
    raise ConfigError(
        f"ckpt={path}: neither an avvp-train checkpoint nor an avvp-convert network file "
        "(convert the original code's weights with avvp-convert first)"
    )


def evaluate(cfg: DictConfig) -> dict[str, Any] | None:
    """Score ``cfg.ckpt`` on ``cfg.split``; returns metrics.json's content."""
    if cfg.split not in ("val", "test"):
        raise ConfigError(f"split={cfg.split!r} is not allowed; choose one of val, test")
    L.seed_everything(cfg.seed, workers=True)
    network, network_config = load_network(cfg.ckpt)
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
    exit_on_config_error("avvp-evaluate", evaluate, cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
