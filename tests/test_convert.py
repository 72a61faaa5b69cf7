"""Checkpoint conversion: original key layout <-> ours, errors, and the avvp-convert CLI."""

from __future__ import annotations

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from avvp_lit.cli.convert import main
from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.models.convert import (
    ConversionError,
    load_official,
    official_model_config,
    to_official,
)
from avvp_lit.models.loading import NetworkFileError, read_network
from tests.helpers.training import compose_raw

SMALL_MMCSE = [
    "model.hidden_dim=32",
    "model.class_dim=16",
    "model.ffn_dim=24",
    "model.num_layers=2",
]
SMALL_HAN = ["model.hidden_dim=32", "model.enhancement.ffn_dim=24"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(*overrides: str):
    cfg = compose_raw(overrides)
    torch.manual_seed(0)
    return hydra.utils.instantiate(cfg.model).eval()


def inputs(feature_set: str, b: int = 2) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    shapes = [(b, *shape) for shape in FEATURE_SETS[feature_set].input_shapes.values()]
    return tuple(torch.randn(s, generator=g) for s in shapes)


def same_outputs(a, b, args) -> None:
    with torch.no_grad():
        x, y = a(*args), b(*args)
    for key in ("global_prob", "a_prob", "v_prob", "frame_prob", "frame_logits"):
        torch.testing.assert_close(getattr(x, key), getattr(y, key), rtol=0, atol=0)


@pytest.mark.parametrize("feature_set", ["han", "valor"])
def test_mmcse_official_layout_round_trip(feature_set):
    net = build("+model=mmcse", f"model/projection={feature_set}", *SMALL_MMCSE)
    official = to_official(net, "mmcse")
    assert "a_unmix.25.1.weight" in official and "fc_av_att.fc.24.bias" in official
    assert official["fc_prob.fc.3.weight"].shape == (1, 16)
    back = load_official(official, "mmcse")
    assert not back.training  # loaded networks come in eval mode
    assert back.projection.feature_set == feature_set  # CLAP map vs HAN audio from the weights
    same_outputs(net, back, inputs(feature_set))
    again = to_official(back, "mmcse")
    assert list(again) == list(official)
    assert all(torch.equal(again[k], v) for k, v in official.items())


def test_han_official_layout_round_trip_ignores_unused_modules():
    net = build("+model=han", *SMALL_HAN)
    official = to_official(net, "han")
    assert (
        "cmt_encoder.norm1.weight" in official
        and "audio_encoder.layers.0.linear1.weight" in official
    )
    official["cmt_encoder.norm1.weight"] = torch.randn(32)  # unused: any value is ignored
    back = load_official(official, "han")
    same_outputs(net, back, inputs("han"))


def test_wrapped_and_data_parallel_checkpoints():
    net = build("+model=han", *SMALL_HAN)
    official = to_official(net, "han")
    for wrapped in (
        {"model": official, "epoch": 3},
        {"state_dict": {f"module.{k}": v for k, v in official.items()}},
    ):
        same_outputs(net, load_official(wrapped, "han"), inputs("han"))


def test_unexpected_and_missing_keys_are_errors_naming_them():
    net = build("+model=mmcse", "model/projection=han", *SMALL_MMCSE)
    official = to_official(net, "mmcse")
    extra = dict(official, **{"extra_head.weight": torch.zeros(3)})
    with pytest.raises(ConversionError, match="unexpected keys.*extra_head.weight"):
        load_official(extra, "mmcse")
    missing = {k: v for k, v in official.items() if k != "av_enhance.layers.1.fc2.bias"}
    with pytest.raises(ConversionError, match="missing keys.*av_enhance.layers.1.fc2.bias"):
        load_official(missing, "mmcse")
    with pytest.raises(ConversionError, match="not a released han"):
        load_official(official, "han")  # the wrong architecture


def test_ablation_has_no_original_counterpart():
    net = build("+model=mmcse", "model/decoupling=shared", *SMALL_MMCSE)
    with pytest.raises(ConversionError, match="not the original mmcse"):
        to_official(net, "mmcse")


def test_model_config_is_instantiable():
    net = build("+model=mmcse", "model/projection=valor", *SMALL_MMCSE)
    official = to_official(net, "mmcse")
    config = official_model_config(official, "mmcse")
    assert config["_target_"].endswith("ClassWiseParsingNetwork")
    assert config["feature_set"] == "valor" and config["class_dim"] == 16
    rebuilt = hydra.utils.instantiate(config)
    rebuilt.load_state_dict(net.state_dict())
    same_outputs(net, rebuilt.eval(), inputs("valor"))


def test_avvp_convert_cli_round_trip(tmp_path, capsys):
    net = build("+model=han", *SMALL_HAN)
    src, dst = tmp_path / "MMIL_Net.pt", tmp_path / "out.avvp.pt"
    torch.save(to_official(net, "han"), src)
    assert main([str(src), str(dst), "--arch", "han"]) == 0
    assert "han" in capsys.readouterr().out
    payload = torch.load(dst, weights_only=True)
    assert payload["format"] == "avvp-lit-network" and payload["arch"] == "han"
    assert set(payload) == {"format", "arch", "model_config", "state_dict"}
    loaded = read_network(dst)
    assert loaded.kind == "network file" and loaded.model_config == payload["model_config"]
    same_outputs(net, loaded.network.eval(), inputs("han"))
    direct = hydra.utils.instantiate(payload["model_config"])  # a plain Hydra config
    direct.load_state_dict(payload["state_dict"])
    same_outputs(net, direct.eval(), inputs("han"))


def test_avvp_convert_cli_reports_bad_checkpoints(tmp_path, capsys):
    src = tmp_path / "bad.pt"
    torch.save({"fc_a.weight": torch.zeros(4, 4)}, src)
    assert main([str(src), str(tmp_path / "out.pt"), "--arch", "mmcse"]) == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()
    with pytest.raises(
        NetworkFileError, match="neither an avvp-train checkpoint nor an avvp-convert"
    ):
        read_network(src)


def test_avvp_convert_cli_on_golden_checkpoint(golden_dir, tmp_path):
    dst = tmp_path / "mmcse_clip.avvp.pt"
    assert main([str(golden_dir / "mmcse_clip.state_dict.pt"), str(dst), "--arch", "mmcse"]) == 0
    io = torch.load(golden_dir / "mmcse_clip.io.pt", weights_only=True)
    with torch.no_grad():
        out = read_network(dst).network.eval()(**io["inputs"])
    assert (out.global_prob - io["outputs"]["global_prob"]).abs().max() <= 1e-5


@pytest.mark.parametrize(
    ("golden", "arch", "composed"),
    [
        ("mmcse_clip", "mmcse", ["+model=mmcse"]),
        ("mmcse_han", "mmcse", ["+model=mmcse", "model/projection=han"]),
        ("han", "han", ["+model=han"]),
        ("valor_pp", "valor", ["+model=valor"]),
    ],
)
def test_the_original_networks_are_the_packaged_model_configs(golden_dir, golden, arch, composed):
    """The converter writes the original architecture out (the models never compose the
    app config); at the released sizes it is exactly what the packaged config composes."""
    state = torch.load(golden_dir / f"{golden}.state_dict.pt", weights_only=True)
    packaged = OmegaConf.to_container(compose_raw(composed).model, resolve=True)
    assert official_model_config(state, arch) == packaged
