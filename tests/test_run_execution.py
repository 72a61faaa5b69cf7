"""How a run executes its network: ``fused=auto|true|false`` and ``compile``."""

from __future__ import annotations

import logging

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from avvp_lit.engine.builders import build_module, probe_batch
from avvp_lit.engine.execution import fused_wins, prepare_network
from avvp_lit.models.enhancement import GatedGlobalIntra
from avvp_lit.models.fused import is_fused, parts_without_twin
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


class PeakGlobalIntra(GatedGlobalIntra):
    """A new LGSF part written without a fused twin: the peak over time as the global
    feature instead of the mean."""

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h, g = F.relu(self.glob1(s)), F.relu(self.glob2(s)).amax(dim=2, keepdim=True)
        return z + torch.sigmoid(F.cosine_similarity(h, g, dim=-1)).unsqueeze(-1) * g


def network_with_new_part() -> torch.nn.Module:
    net = network()
    layer = net.enhancement.layers[0]
    layer.lgsf.intra = PeakGlobalIntra(dim=layer.fc1.in_features)
    return net


def test_a_part_without_a_fused_twin_runs_the_plain_blocks_said_once(caplog):
    cpu = OmegaConf.create({"fused": "auto", "trainer": {"accelerator": "cpu"}})
    with caplog.at_level(logging.INFO, logger="avvp_lit"):
        net = prepare_network(network_with_new_part(), cpu)
    assert not is_fused(net)
    said = [r.getMessage() for r in caplog.records if "no fused twin" in r.getMessage()]
    assert len(said) == 1 and "enhancement.layers.0.lgsf.intra" in said[0], said
    assert "PeakGlobalIntra" in said[0]
    assert parts_without_twin(network()) == []  # the released blocks all have twins


def test_fused_true_with_a_part_without_a_twin_is_a_config_error():
    with pytest.raises(ConfigError, match=r"fused=true: no fused twin for .*PeakGlobalIntra"):
        prepare_network(network_with_new_part(), OmegaConf.create({"fused": True}))


def test_a_new_part_trains_under_the_default_settings():
    """The build-time check runs on the network as it will train, and a training step of
    a network with a twin-less part runs (before, fused=auto crashed at the first step)."""
    cfg = compose_raw(["data.root=unused", "model.num_layers=1"], "train")
    module = build_module(cfg, network=network_with_new_part())
    assert not is_fused(module.network)
    loss = module.loss(module(probe_batch("valor")), probe_batch("valor"))["total"]
    loss.backward()
    grad = module.network.enhancement.layers[0].lgsf.intra.glob2.weight.grad
    assert grad is not None and torch.isfinite(grad).all()
