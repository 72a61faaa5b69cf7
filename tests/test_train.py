"""Training runs: every config combination connects, results are right, runs are reliable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from avvp_lit.data.synthetic import COMPLETE_MARKER
from avvp_lit.evaluate import evaluate
from avvp_lit.metrics import METRIC_NAMES
from avvp_lit.metrics.cli import main as eval_main
from avvp_lit.run import ConfigError
from avvp_lit.train import train
from tests.training import compose_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DATA_COMBINATIONS = {
    "synthetic_tiny-valor": ["data=synthetic_tiny"],
    "synthetic_tiny-han": ["data=synthetic_tiny", "data.feature_set=han"],
    "llp_valor": ["data=llp_valor", "data.in_memory=false", "data.num_workers=0"],
    "llp_han": ["data=llp_han", "data.in_memory=false", "data.num_workers=0"],
}
MODEL_LOSS = {
    "mmcse-mmcse": ["model=mmcse", "loss=mmcse"],
    "mmcse-han": ["model=mmcse", "loss=han"],
    "han-han": ["model=han", "loss=han"],
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic tiny datasets, generated once for the whole session."""
    return tmp_path_factory.mktemp("data")


def _feature_set(data_overrides: list[str]) -> str:
    return "han" if any("han" in o for o in data_overrides) else "valor"


def _tiny_root(data_dir: Path, feature_set: str) -> Path:
    from avvp_lit.data.synthetic import generate

    root = data_dir / f"synthetic_{feature_set}_tiny"
    if not (root / COMPLETE_MARKER).exists():
        generate(root, features=feature_set, size="tiny", seed=0, progress=False)
    return root


def _overrides(data_dir: Path, data: list[str], model_loss: list[str]) -> list[str]:
    feature_set = _feature_set(data)
    extra = [f"data.root={_tiny_root(data_dir, feature_set)}"]
    if "model=mmcse" in model_loss or "model=han" in model_loss:
        extra.append(f"model/projection={feature_set}")
    if feature_set == "han" and "loss=mmcse" in model_loss:
        extra.append("~loss.terms.pseudo_label")
    return [*data, *model_loss, *extra, "logger=csv", "experiment=smoke"]


@pytest.mark.parametrize("data", DATA_COMBINATIONS, ids=str)
@pytest.mark.parametrize("model_loss", MODEL_LOSS, ids=str)
def test_fast_dev_run_of_every_combination(tmp_path, data_dir, data, model_loss) -> None:
    overrides = _overrides(data_dir, DATA_COMBINATIONS[data], MODEL_LOSS[model_loss])
    cfg = compose_config("train", [*overrides, "debug=fast_dev_run"], tmp_path, data_dir)
    payload = train(cfg)
    assert all(0.0 <= payload[name] <= 100.0 for name in METRIC_NAMES)
    assert (tmp_path / "predictions.npz").exists()


def test_pseudo_label_loss_without_pseudo_labels_fails_early(tmp_path, data_dir) -> None:
    overrides = ["data=synthetic_tiny", "data.feature_set=han", "model/projection=han"]
    cfg = compose_config("train", [*overrides, "logger=csv"], tmp_path, data_dir)
    with pytest.raises(ConfigError, match="loss.terms.pseudo_label.*feature set 'han'"):
        train(cfg)


def test_bad_choice_names_the_key_and_the_choices(tmp_path, data_dir) -> None:
    cfg = compose_config("train", ["metrics.gating=audio"], tmp_path, data_dir)
    with pytest.raises(ConfigError, match="metrics.gating='audio'.*global, modality, mmcse"):
        train(cfg)
    cfg = compose_config("train", ["data.feature_set=han"], tmp_path, data_dir)
    with pytest.raises(ConfigError, match="model.feature_set='valor'.*model/projection=han"):
        train(cfg)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("train", ["metrics.gating=audio"], "avvp-train: config error: metrics.gating="),
        (
            "evaluate",
            ["ckpt=/nonexistent.ckpt"],
            "avvp-evaluate: config error: ckpt=/nonexistent.ckpt: no such file",
        ),
        (
            "parse",
            ["ckpt=/nonexistent.ckpt", "input=/x"],
            "avvp-parse: config error: ckpt=/nonexistent.ckpt: no such file",
        ),
    ],
)
def test_entry_points_end_a_config_error_with_status_2(tmp_path, module, args, message) -> None:
    run = subprocess.run(
        [sys.executable, "-m", f"avvp_lit.{module}", *args, f"hydra.run.dir={tmp_path}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert message in run.stderr
    assert "Traceback" not in run.stderr


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("smoke")
    overrides = _overrides(data_dir, ["data=synthetic_tiny"], MODEL_LOSS["mmcse-mmcse"])
    train(compose_config("train", [*overrides, "trainer.max_epochs=2"], out, data_dir))
    return out


def test_smoke_run_writes_every_result_file(smoke_run: Path) -> None:
    for name in ("metrics.json", "predictions.npz", "summary.md", "config.yaml"):
        assert (smoke_run / name).stat().st_size > 0, name
    checkpoints = {p.name for p in (smoke_run / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and any(n.startswith("epoch_") for n in checkpoints)
    payload = json.loads((smoke_run / "metrics.json").read_text())
    assert set(METRIC_NAMES) <= set(payload)
    assert payload["protocol"]["gating"] == "global" and payload["protocol"]["split"] == "test"
    assert set(payload["baselines"]) == {"predict nothing", "tiled video-level"}
    assert len(payload["config_sha256"]) == 64
    summary = (smoke_run / "summary.md").read_text()
    assert "| mmcse |" in summary and "predict nothing" in summary and "protocol:" in summary


def test_predictions_file_scores_the_same_under_avvp_eval(
    smoke_run: Path, tmp_path, data_dir
) -> None:
    payload = json.loads((smoke_run / "metrics.json").read_text())
    out = tmp_path / "eval.json"
    root = _tiny_root(data_dir, "valor")
    assert (
        eval_main(
            [str(smoke_run / "predictions.npz"), "--annotations", str(root), "--json", str(out)]
        )
        == 0
    )
    independent = json.loads(out.read_text())
    for name in METRIC_NAMES:
        assert independent[name] == pytest.approx(payload[name], abs=1e-9), name


def test_same_seed_gives_identical_metrics(smoke_run: Path, tmp_path, data_dir) -> None:
    overrides = _overrides(data_dir, ["data=synthetic_tiny"], MODEL_LOSS["mmcse-mmcse"])
    again = train(compose_config("train", [*overrides, "trainer.max_epochs=2"], tmp_path, data_dir))
    first = json.loads((smoke_run / "metrics.json").read_text())
    assert {n: again[n] for n in METRIC_NAMES} == {n: first[n] for n in METRIC_NAMES}


def _subprocess_train(run_dir: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    root = _tiny_root(data_dir, "valor")
    command = [
        sys.executable,
        "-m",
        "avvp_lit.train",
        "experiment=smoke",
        "logger=csv",
        f"data.root={root}",
        f"hydra.run.dir={run_dir}",
        "data.batch_size=4",
        *extra,
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir.parent / f"{run_dir.name}.log"  # a file: a full pipe would stall the run
    with open(log_path, "a") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    process.log_path = log_path
    return process


def _finish(process: subprocess.Popen, timeout: float) -> None:
    try:
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, process.log_path.read_text()[-3000:]


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path, data_dir: Path) -> None:
    epochs = "trainer.max_epochs=2"
    _finish(_subprocess_train(tmp_path / "straight", data_dir, epochs), timeout=600)
    interrupted_dir = tmp_path / "interrupted"
    run = _subprocess_train(interrupted_dir, data_dir, epochs)
    last = interrupted_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and run.poll() is None:
        time.sleep(0.05)
    assert last.exists(), "no end-of-epoch checkpoint appeared"
    time.sleep(0.5)
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=120) != 0, run.log_path.read_text()[-3000:]
    assert not (interrupted_dir / "metrics.json").exists()
    assert not (interrupted_dir / "predictions.npz").exists()
    epoch = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert epoch < 1, "the run finished before the interrupt"
    _finish(_subprocess_train(interrupted_dir, data_dir, epochs, f"ckpt_path={last}"), timeout=600)
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((interrupted_dir / "metrics.json").read_text())
    assert {n: a[n] for n in METRIC_NAMES} == {n: b[n] for n in METRIC_NAMES}


@pytest.mark.slow
def test_ddp_validation_equals_single_process_evaluation(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "ddp"
    ddp = _subprocess_train(
        run_dir,
        data_dir,
        "trainer=ddp",
        "trainer.max_epochs=1",
        "test=false",
        "data.batch_size=8",
        "data.eval_batch_size=5",
    )
    _finish(ddp, timeout=600)
    logged = pd.read_csv(run_dir / "csv" / "metrics.csv")
    val = logged.dropna(subset=["val/seg_type"]).iloc[-1]
    cfg = compose_config(
        "evaluate",
        [
            f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}",
            "split=val",
            "data=synthetic_tiny",
            f"data.root={_tiny_root(data_dir, 'valor')}",
        ],
        tmp_path / "single",
        data_dir,
    )
    single = evaluate(cfg)
    for name in METRIC_NAMES:
        assert single[name] == pytest.approx(float(val[f"val/{name}"]), abs=1e-4), name


def test_evaluate_a_converted_golden_checkpoint(
    golden_dir: Path, tmp_path: Path, data_dir: Path
) -> None:
    from avvp_lit.models.convert import main as convert_main

    network_file = tmp_path / "mmcse_clip.pt"
    assert (
        convert_main(
            [str(golden_dir / "mmcse_clip.state_dict.pt"), str(network_file), "--arch", "mmcse"]
        )
        == 0
    )
    root = _tiny_root(data_dir, "valor")
    cfg = compose_config(
        "evaluate",
        [f"ckpt={network_file}", "data=synthetic_tiny", f"data.root={root}"],
        tmp_path / "run",
        data_dir,
    )
    payload = evaluate(cfg)
    assert set(METRIC_NAMES) <= set(payload)
    with np.load(tmp_path / "run" / "predictions.npz") as predictions:
        assert predictions["frame_prob"].shape == (24, 10, 2, 25)
