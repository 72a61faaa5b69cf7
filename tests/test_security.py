"""No command runs code from a file: pickled objects and foreign ``_target_`` names are
refused with a named error, and the harmless payloads (which would create a folder) never
run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp_lit.engine.tasks import check_resume_checkpoint
from avvp_lit.models.loading import (
    NetworkFileError,
    build_network,
    read_network,
    register_block,
)
from tests.helpers import REPO
from tests.helpers.training import compose_raw, run_app

SMALL_HAN = ["+model=han", "model.hidden_dim=16", "model.enhancement.ffn_dim=16"]


class MakesFolder:
    """Unpickling this calls ``os.mkdir(path)``: the stand-in for arbitrary code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def small_network_config(*overrides: str) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose_raw([*SMALL_HAN, *overrides]).model, resolve=True)


def network_file(path: Path, config: dict, state: dict | None = None) -> Path:
    payload = {"format": "avvp-lit-network", "arch": "han", "model_config": config}
    payload["state_dict"] = state if state is not None else {}
    torch.save(payload, path)
    return path


def checkpoint_file(path: Path, config: dict, state: dict, **extra) -> Path:
    prefixed = {f"network.{k}": v for k, v in state.items()}
    torch.save({"avvp_lit": {"network_config": config}, "state_dict": prefixed, **extra}, path)
    return path


def test_pickled_object_in_a_checkpoint_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config = small_network_config()
    network = build_network(config)
    path = checkpoint_file(tmp_path / "evil.ckpt", config, network.state_dict())
    payload = torch.load(path, weights_only=True)
    payload["hyper_parameters"] = {"x": MakesFolder(marker)}
    torch.save(payload, path)
    with pytest.raises(NetworkFileError, match="refusing to load"):
        read_network(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "target",
    [
        "os.mkdir",
        "avvp_lit.models.convert.load_official",  # a project function, not a block
        "torch.load",
    ],
)
def test_foreign_target_in_a_stored_config_is_refused_unrun(tmp_path: Path, target: str) -> None:
    marker = tmp_path / "ran"
    top = network_file(tmp_path / "top.pt", {"_target_": target, "path": str(marker)})
    with pytest.raises(NetworkFileError, match=f"model._target_='{target}' is not one"):
        read_network(top)
    config = small_network_config()
    config["enhancement"] = {"_target_": target, "path": str(marker)}
    nested = checkpoint_file(tmp_path / "nested.ckpt", config, {})
    with pytest.raises(NetworkFileError, match="model.enhancement._target_"):
        read_network(nested)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_dim": "${oc.env:HOME}"}, "holds an interpolation"),
        ({"_args_": ["x"]}, "model._args_ is not allowed"),
        ({"_recursive_": False}, "model._recursive_ is not allowed"),
    ],
)
def test_hydra_features_in_a_stored_config_are_refused(
    tmp_path: Path, change: dict, message: str
) -> None:
    config = {**small_network_config(), **change}
    with pytest.raises(NetworkFileError, match=message):
        read_network(network_file(tmp_path / "n.pt", config))


def test_project_blocks_load_and_own_blocks_need_trust(tmp_path: Path) -> None:
    config = small_network_config()
    network = build_network(config)
    path = checkpoint_file(tmp_path / "ok.ckpt", config, network.state_dict())
    loaded = read_network(path)
    assert loaded.kind == "checkpoint" and not loaded.network.training
    for key, value in network.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value)

    class OwnNet(torch.nn.Linear):
        pass

    own = {"_target_": f"{__name__}.OwnNet", "in_features": 2, "out_features": 1}
    globals()["OwnNet"] = OwnNet
    OwnNet.__qualname__ = "OwnNet"
    own_path = network_file(tmp_path / "own.pt", own, OwnNet(2, 1).state_dict())
    with pytest.raises(NetworkFileError, match="trusted_blocks"):
        read_network(own_path)
    assert isinstance(read_network(own_path, trusted=[own["_target_"]]).network, OwnNet)
    register_block(OwnNet)
    assert isinstance(read_network(own_path).network, OwnNet)


def test_weights_of_another_network_are_a_named_error(tmp_path: Path) -> None:
    config = small_network_config()
    other = build_network(small_network_config("model.hidden_dim=32"))
    path = checkpoint_file(tmp_path / "other.ckpt", config, other.state_dict())
    with pytest.raises(NetworkFileError, match=r"do not fit .* shape") as error:
        read_network(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"epoch=3 val=0.5\n", "not a"),
        (None, "truncated"),
    ],
)
def test_unreadable_checkpoints_are_named_errors(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.ckpt"
    if content is None:
        config = small_network_config()
        good = checkpoint_file(tmp_path / "good.ckpt", config, build_network(config).state_dict())
        content = good.read_bytes()[: good.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(NetworkFileError, match=message):
        read_network(path)


def test_resume_checkpoint_is_checked_before_work(tmp_path: Path) -> None:
    from avvp_lit.engine.builders import build_module

    cfg = compose_raw(["model=han", "loss=han", "model.hidden_dim=16", "data=llp_han"], "train")
    module = build_module(cfg)
    marker = tmp_path / "ran"
    state = module.network.state_dict()
    path = checkpoint_file(tmp_path / "evil.ckpt", {}, state, loops={"x": MakesFolder(marker)})
    with pytest.raises(NetworkFileError, match="refusing to load"):
        check_resume_checkpoint(str(path), module)
    weights_only = checkpoint_file(tmp_path / "w.ckpt", {}, state)
    with pytest.raises(ValueError, match="cannot resume training"):
        check_resume_checkpoint(str(weights_only), module)
    assert not marker.exists()


def run_cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": ""},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_parse_and_evaluate_refuse_a_pickled_checkpoint(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    marker = tmp_path / "ran"
    torch.save({"avvp_lit": MakesFolder(marker), "state_dict": {}}, tmp_path / "evil.ckpt")
    for module, extra in (
        ("avvp_lit.cli.parse", [f"input={tmp_path}"]),
        ("avvp_lit.cli.evaluate", [f"data.root={tmp_path / 'absent'}"]),
    ):
        args = [f"ckpt={tmp_path / 'evil.ckpt'}", *extra, f"hydra.run.dir={tmp_path}/run"]
        code, err = run_app(module, args, monkeypatch, capsys)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "refusing to load" in lines[0], err
    assert not marker.exists()


@pytest.mark.slow
def test_eval_refuses_pickled_predictions(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "pred.npz"
    objects = np.empty(1, dtype=object)
    objects[0] = MakesFolder(marker)
    zeros = np.zeros((1, 25), np.float32)
    np.savez(
        path,
        filenames=objects,
        global_prob=zeros,
        a_prob=zeros,
        v_prob=zeros,
        frame_prob=np.zeros((1, 10, 2, 25), np.float32),
    )
    run = run_cli("avvp_lit.cli.eval", str(path), "--annotations", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 2 and "stored as Python objects" in run.stderr, run.stderr
    assert not marker.exists()
