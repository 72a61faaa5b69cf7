"""The packaged Hydra config (``avvp_lit.conf``) composed outside a Hydra app: the one
way the benchmarks and the tests build a config from overrides (the models never compose
it; ``tests/test_layout.py`` holds this the only module that does)."""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

CONFIG_MODULE = "avvp_lit.conf"


def compose_config(
    config_name: str | None = "train",
    overrides: Sequence[str] = (),
    *,
    return_hydra_config: bool = False,
) -> DictConfig:
    """``config_name`` (``train``, ``evaluate``, ``parse``; ``None`` for an empty primary
    config) with ``overrides``, as the Hydra app would compose it (with its ``hydra``
    node when ``return_hydra_config``). Works inside a running Hydra app too (the global
    Hydra state is restored)."""
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(
            config_name=config_name,
            overrides=list(overrides),
            return_hydra_config=return_hydra_config,
        )
