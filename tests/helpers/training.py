"""Composing the project's Hydra configs in tests (no network, W&B disabled)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from avvp_lit.data.synthetic import COMPLETE_MARKER
from avvp_lit.engine.config import compose_config

# avvp-train has no default experiment; a test that names none means the synthetic one
DEFAULT_EXPERIMENT = "experiment=synthetic"


def with_experiment(overrides: Sequence[str]) -> list[str]:
    """``overrides`` for `avvp-train`, with :data:`DEFAULT_EXPERIMENT` unless they name one."""
    named = any(o.lstrip("+~").startswith("experiment=") for o in overrides)
    return list(overrides) if named else [DEFAULT_EXPERIMENT, *overrides]


def compose_raw(
    overrides: Sequence[str], config_name: str | None = None, return_hydra_config: bool = False
) -> DictConfig:
    """The installed configs (``avvp_lit.conf``) composed as Hydra's ``compose`` does
    (for ``train``, with :func:`with_experiment`)."""
    GlobalHydra.instance().clear()
    if config_name == "train":
        overrides = with_experiment(overrides)
    return compose_config(config_name, overrides, return_hydra_config=return_hydra_config)


def run_config(name: str, overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
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


def tiny_root(data_dir: Path, feature_set: str) -> Path:
    from avvp_lit.data.synthetic import generate

    root = data_dir / f"synthetic_{feature_set}_tiny"
    if not (root / COMPLETE_MARKER).exists():
        generate(root, features=feature_set, size="tiny", seed=0, progress=False)
    return root


def subprocess_train(run_dir: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    root = tiny_root(data_dir, "valor")
    command = [
        sys.executable,
        "-m",
        "avvp_lit.cli.train",
        "experiment=smoke",
        "logger=csv",
        f"data.root={root}",
        f"hydra.run.dir={run_dir}",
        "data.batch_size=4",
        "model.num_layers=1",  # a small network: these runs test the run, not the model
        "callbacks.dashboard=null",  # and no figures (tests/test_dashboard.py draws them)
        *extra,
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir.parent / f"{run_dir.name}.log"  # a file: a full pipe would stall the run
    with open(log_path, "a") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    process.log_path = log_path
    return process


def finish(process: subprocess.Popen, timeout: float) -> None:
    try:
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, process.log_path.read_text()[-3000:]


def run_app(module: str, args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run a Hydra app's ``main()`` as its console script would; (exit status, stderr)."""
    import importlib

    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    for name in (None, *logging.root.manager.loggerDict):  # handlers on earlier tests' streams
        logging.getLogger(name).handlers.clear()
    if module == "avvp_lit.cli.train":
        args = with_experiment(args)
    monkeypatch.setattr(sys, "argv", [module, *args])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("AVVP_DEBUG", raising=False)
    app = importlib.import_module(module)
    try:
        app.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    run_app.last_stdout = captured.out
    return code, captured.err
