"""Training runs: every config combination connects, results are right, runs are reliable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avvp_lit.cli.eval import main as eval_main
from avvp_lit.engine.tasks import evaluate_checkpoint as evaluate
from avvp_lit.engine.tasks import train_and_test as train
from avvp_lit.metrics import METRIC_NAMES
from avvp_lit.utils.errors import ConfigError
from tests.helpers.training import finish, run_config, subprocess_train, tiny_root

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

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


def _feature_set(data_overrides: list[str]) -> str:
    return "han" if any("han" in o for o in data_overrides) else "valor"


def _overrides(data_dir: Path, data: list[str], model_loss: list[str]) -> list[str]:
    feature_set = _feature_set(data)
    extra = [f"data.root={tiny_root(data_dir, feature_set)}"]
    if "model=mmcse" in model_loss or "model=han" in model_loss:
        extra.append(f"model/projection={feature_set}")
    if feature_set == "han" and "loss=mmcse" in model_loss:
        extra.append("~loss.terms.pseudo_label")
    # one FGSE layer: these runs check what connects and what is written, not what is learnt
    return [*data, *model_loss, *extra, "model.num_layers=1", "logger=csv", "experiment=smoke"]


@pytest.mark.parametrize("data", DATA_COMBINATIONS, ids=str)
@pytest.mark.parametrize("model_loss", MODEL_LOSS, ids=str)
def test_fast_dev_run_of_every_combination(tmp_path, data_dir, data, model_loss) -> None:
    overrides = _overrides(data_dir, DATA_COMBINATIONS[data], MODEL_LOSS[model_loss])
    run = [*overrides, "debug=fast_dev_run", "data.batch_size=8"]
    cfg = run_config("train", run, tmp_path, data_dir)
    payload = train(cfg)
    assert all(0.0 <= payload[name] <= 100.0 for name in METRIC_NAMES)
    assert (tmp_path / "predictions.npz").exists()


def test_pseudo_label_loss_without_pseudo_labels_fails_early(tmp_path, data_dir) -> None:
    overrides = ["data=synthetic_tiny", "data.feature_set=han", "model/projection=han"]
    cfg = run_config("train", [*overrides, "logger=csv"], tmp_path, data_dir)
    with pytest.raises(ConfigError, match="loss.terms.pseudo_label.*feature set 'han'"):
        train(cfg)


def test_bad_choice_names_the_key_and_the_choices(tmp_path, data_dir) -> None:
    cfg = run_config("train", ["metrics.gating=audio"], tmp_path, data_dir)
    with pytest.raises(ConfigError, match="metrics.gating='audio'.*global, modality, mmcse"):
        train(cfg)
    cfg = run_config("train", ["data.feature_set=han"], tmp_path, data_dir)
    with pytest.raises(ConfigError, match="model.feature_set='valor'.*model/projection=han"):
        train(cfg)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("smoke")
    overrides = _overrides(data_dir, ["data=synthetic_tiny"], MODEL_LOSS["mmcse-mmcse"])
    # no figures callback: the config must reach the loggers without it (ablation profile)
    run = [*overrides, "trainer.max_epochs=1", "callbacks.dashboard=null"]
    train(run_config("train", run, out, data_dir))
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
    import yaml

    logged = yaml.safe_load((smoke_run / "csv" / "hparams.yaml").read_text())
    assert logged["seed"] == 87 and logged["model"]["name"] == "mmcse"


def test_predictions_file_scores_the_same_under_avvp_eval(
    smoke_run: Path, tmp_path, data_dir
) -> None:
    payload = json.loads((smoke_run / "metrics.json").read_text())
    out = tmp_path / "eval.json"
    root = tiny_root(data_dir, "valor")
    assert (
        eval_main(
            [str(smoke_run / "predictions.npz"), "--annotations", str(root), "--json", str(out)]
        )
        == 0
    )
    independent = json.loads(out.read_text())
    for name in METRIC_NAMES:
        assert independent[name] == pytest.approx(payload[name], abs=1e-9), name


def test_video_scores_equal_avvp_evals_per_video_scores(smoke_run: Path, tmp_path, data_dir):
    """The run's video_scores.tsv (what avvp-report pairs) is what avvp-eval scores for
    each video of the run's own predictions file."""
    from avvp_lit.metrics.video_scores import read_video_scores

    per_video = tmp_path / "per_video.tsv"
    argv = [str(smoke_run / "predictions.npz"), "--annotations", str(tiny_root(data_dir, "valor"))]
    assert eval_main([*argv, "--per-video", str(per_video)]) == 0
    names, written = read_video_scores(smoke_run / "video_scores.tsv")
    expected_names, expected = read_video_scores(per_video)
    assert names == expected_names and np.allclose(written, expected, atol=1e-5)


def test_same_seed_gives_identical_metrics(smoke_run: Path, tmp_path, data_dir) -> None:
    overrides = _overrides(data_dir, ["data=synthetic_tiny"], MODEL_LOSS["mmcse-mmcse"])
    run = [*overrides, "trainer.max_epochs=1", "callbacks.dashboard=null"]  # as smoke_run
    again = train(run_config("train", run, tmp_path, data_dir))
    first = json.loads((smoke_run / "metrics.json").read_text())
    assert {n: again[n] for n in METRIC_NAMES} == {n: first[n] for n in METRIC_NAMES}


@pytest.mark.slow
def test_ddp_run_writes_results_equal_to_single_process_evaluation(
    tmp_path: Path, data_dir: Path
) -> None:
    run_dir = tmp_path / "ddp"
    ddp = subprocess_train(
        run_dir,
        data_dir,
        "trainer=ddp",
        "trainer.max_epochs=1",
        "test=true",
        "data.batch_size=8",
        "data.eval_batch_size=5",
    )
    finish(ddp, timeout=600)
    assert {"metrics.json", "predictions.npz", "summary.md"} <= {p.name for p in run_dir.iterdir()}
    tested = json.loads((run_dir / "metrics.json").read_text())
    logged = pd.read_csv(run_dir / "csv" / "metrics.csv")
    val = logged.dropna(subset=["val/seg_type"]).iloc[-1]
    root = tiny_root(data_dir, "valor")
    for split, expected in (
        ("val", {name: float(val[f"val/{name}"]) for name in METRIC_NAMES}),
        ("test", {name: tested[name] for name in METRIC_NAMES}),
    ):
        cfg = run_config(
            "evaluate",
            [
                f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}",
                f"split={split}",
                "data=synthetic_tiny",
                f"data.root={root}",
            ],
            tmp_path / f"single_{split}",
            data_dir,
        )
        single = evaluate(cfg)
        for name in METRIC_NAMES:
            assert single[name] == pytest.approx(expected[name], abs=1e-4), (split, name)


def test_evaluate_a_converted_golden_checkpoint(
    golden_dir: Path, tmp_path: Path, data_dir: Path
) -> None:
    from avvp_lit.cli.convert import main as convert_main

    network_file = tmp_path / "mmcse_clip.pt"
    assert (
        convert_main(
            [str(golden_dir / "mmcse_clip.state_dict.pt"), str(network_file), "--arch", "mmcse"]
        )
        == 0
    )
    root = tiny_root(data_dir, "valor")
    cfg = run_config(
        "evaluate",
        [f"ckpt={network_file}", "data=synthetic_tiny", f"data.root={root}"],
        tmp_path / "run",
        data_dir,
    )
    payload = evaluate(cfg)
    assert set(METRIC_NAMES) <= set(payload)
    with np.load(tmp_path / "run" / "predictions.npz") as predictions:
        assert predictions["frame_prob"].shape == (24, 10, 2, 25)


def stop_epoch(scores: list[float], patience: int) -> int:
    """Where early stopping (max, min_delta 0) ends a run with these scores: the first
    epoch that is ``patience`` epochs past the best so far (the whole curve if none)."""
    best = 0
    for epoch in range(1, len(scores)):
        if scores[epoch] > scores[best]:
            best = epoch
        elif epoch - best >= patience:
            return epoch + 1
    return len(scores)


def test_an_early_stopped_run_records_its_regime(tmp_path, data_dir) -> None:
    """HAN on the tiny set scores lower after its first epoch (tests/test_resume.py), so
    patience 1 stops it after epoch 2 of 4; metrics.json says so, with the curve the CSV
    logger saw and the epoch the test used."""
    overrides = _overrides(data_dir, ["data=synthetic_tiny"], MODEL_LOSS["han-han"])
    early = (
        "+callbacks.early_stopping={_target_: lightning.pytorch.callbacks.EarlyStopping, "
        "monitor: val/seg_type, mode: max, patience: 1}"
    )
    run = [*overrides, "optimizer.lr=1e-3", "data.batch_size=8", "trainer.max_epochs=4", early]
    payload = train(run_config("train", [*run, "callbacks.dashboard=null"], tmp_path, data_dir))
    record = payload["training"]
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv").dropna(subset=["val/seg_type"])
    assert record["val_seg_type"] == pytest.approx(logged["val/seg_type"].tolist(), abs=1e-12)
    scores = record["val_seg_type"]
    assert record["epochs"] == len(scores) == stop_epoch(scores, patience=1) == 2
    assert record["stopped_early"] is True and record["max_epochs"] == 4
    assert record["best_epoch"] == int(np.argmax(scores)) + 1 == 1
    assert Path(payload["checkpoint"]).name == "epoch_000.ckpt"
    assert record["stopping"].startswith("early stopping on val/seg_type (max, patience 1")
    assert record["videos"] == {"train": 64, "val": 24, "test": 24}
