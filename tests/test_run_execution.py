"""How a run executes its network: ``fused=auto|true|false`` and ``compile``."""

from __future__ import annotations

import hydra
import pytest
from omegaconf import OmegaConf

from avvp_lit.engine.run import fused_wins, prepare_network
from avvp_lit.models.fused import is_fused
from avvp_lit.utils.errors import ConfigError
from tests.helpers.training import compose_raw


@pytest.mark.parametrize(
    ("accelerator", "precision", "compile_", "expected"),
    [
        ("cpu", "32-true", False, True),
        ("cpu", "32", False, True),
        ("cpu", "bf16-mixed", False, False),
        ("cpu", "64-true", False, False),
        ("cpu", "32-true", True, False),
        ("gpu", "32-true", False, False),
        ("cuda", "bf16-mixed", True, False),
    ],
)
def test_auto_picks_the_fused_kernels_only_on_a_cpu_in_float32_without_compile(
    accelerator, precision, compile_, expected
):
    assert fused_wins(accelerator=accelerator, precision=precision, compile=compile_) is expected


def network():
    cfg = compose_raw(["data.root=unused", "model.num_layers=1"], "train")
    return hydra.utils.instantiate(cfg.model)


@pytest.mark.parametrize(
    ("settings", "fused"),
    [
        ({"fused": "auto", "trainer": {"accelerator": "cpu", "precision": "32-true"}}, True),
        ({"fused": "auto", "trainer": {"accelerator": "cpu", "precision": "bf16-mixed"}}, False),
        ({"fused": False, "trainer": {"accelerator": "cpu", "precision": "32-true"}}, False),
        ({"fused": True, "trainer": {"accelerator": "gpu", "precision": "bf16-mixed"}}, True),
    ],
)
def test_prepare_network_applies_the_choice(settings, fused):
    net = prepare_network(network(), OmegaConf.create({"compile": False, **settings}))
    assert is_fused(net) is fused


def test_the_default_train_config_runs_fused_on_this_cpu():
    cfg = compose_raw(["data.root=unused", "model.num_layers=1"], "train")
    assert (cfg.fused, cfg.compile) == ("auto", False)
    assert is_fused(prepare_network(network(), cfg))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fused": "yes"}, "fused='yes' is not allowed; choose one of auto, true, false"),
        ({"compile": "maybe"}, "compile='maybe' is not allowed; choose true or false"),
        ({"fused": True, "compile": True}, "fused=true cannot be compiled"),
    ],
)
def test_bad_execution_settings_are_named_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        prepare_network(network(), OmegaConf.create(settings))
