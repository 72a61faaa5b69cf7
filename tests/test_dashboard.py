"""The dashboards: W&B offline runs, figures in the run directory, logger configs, sweeps.

The main test trains a stand-in network (``tests.helpers.tiny.TinyNet``) through the real
``avvp-train`` code path on a tiny hand-made dataset with ``WANDB_MODE=offline`` and
checks what W&B received through its public ``Run`` object (``config`` and ``summary``)
and the offline run folder's media files: the metrics, the resolved config, the
timeline and attention images, the per-class F1 table. No network, no account.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from omegaconf import DictConfig, open_dict

from avvp_lit.classes import CLASSES
from avvp_lit.data.datamodule import LLPDataModule
from avvp_lit.engine.builders import instantiate_group
from avvp_lit.engine.dashboard import Dashboard
from avvp_lit.engine.loggers import wandb_group_and_tags, wandb_logger
from avvp_lit.engine.module import AVVPModule
from avvp_lit.metrics import METRIC_NAMES
from avvp_lit.metrics.functional import CLASS_F1_KEYS
from tests.helpers.datasets import write_dataset
from tests.helpers.tiny import TinyNet
from tests.helpers.training import DEFAULT_EXPERIMENT, compose_raw, run_config

NO_MODEL = ["~model", "~loss"]


def stand_in_config(root: Path, out: Path, overrides: list[str]) -> DictConfig:
    """train.yaml with the stand-in network and loss on a tiny HAN-feature dataset."""
    cfg = run_config("train", NO_MODEL + overrides, out, out.parent / "data")
    with open_dict(cfg):
        cfg.model = {"_target_": "tests.helpers.tiny.TinyNet", "feature_set": "han"}
        cfg.loss = {"_target_": "tests.helpers.tiny.TinyLoss"}
        cfg.data.root = str(root)
        cfg.data.feature_set = "han"
        cfg.data.synthetic = None
        cfg.data.default_root = None
    return cfg


@pytest.fixture()
def restore_hydra_config():
    previous = HydraConfig.instance().cfg
    yield
    HydraConfig.instance().cfg = previous


@pytest.fixture()
def offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """W&B offline with its user-level folders inside the test's temporary folder."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for variable in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "wandb-home"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield
    wandb.finish()


@pytest.mark.slow
def test_offline_wandb_run_holds_metrics_config_table_and_images(
    tmp_path: Path, offline_wandb: None, restore_hydra_config: None
) -> None:
    import wandb

    from avvp_lit.engine.tasks import train_and_test as train

    root = tmp_path / "llp"
    splits = write_dataset(root, "han", (8, 5, 5), seed=1)
    out = tmp_path / "run"
    cfg = stand_in_config(
        root,
        out,
        [
            "logger=default",
            "trainer.max_epochs=2",
            "trainer.log_every_n_steps=1",
            "data.batch_size=4",
            "callbacks.dashboard.every_n_epochs=1",
            "callbacks.dashboard.num_videos=2",
            "~callbacks.rich_progress_bar",
        ],
    )
    assert cfg.logger.wandb.mode == "offline"
    payload = train(cfg)
    assert payload is not None
    run = wandb.run
    config, summary = run.config.as_dict(), dict(run.summary)
    wandb.finish()  # flushes the run folder

    figures = out / "figures"
    for epoch in (0, 1):
        timelines = sorted((figures / f"epoch_{epoch:03d}").glob("timeline_*.png"))
        assert [p.name[:11] for p in timelines] == ["timeline_00", "timeline_01"]
        assert splits["val"][0] in timelines[0].name
        assert (figures / f"epoch_{epoch:03d}" / "attention.png").stat().st_size > 5_000
    for name in ("class_f1_seg.png", "class_f1_evt.png"):
        assert (figures / "test" / name).stat().st_size > 5_000
    f1_rows = (figures / "test" / "class_f1.csv").read_text().splitlines()
    assert f1_rows[0] == "class,seg_a,seg_v,seg_av,evt_a,evt_v,evt_av"
    assert [r.split(",")[0] for r in f1_rows[1:]] == list(CLASSES)
    assert (out / "csv" / "metrics.csv").is_file()

    (run_dir,) = (out / "wandb").glob("offline-run-*")
    media = run_dir / "files" / "media"
    for i in range(2):
        assert len(list(media.glob(f"images/val/timeline/{i:02d}_*.png"))) == 2
    assert len(list(media.glob("images/val/attention_*.png"))) == 2
    assert len(list(media.glob("images/test/class_f1_*.png"))) == 2
    (table_file,) = media.glob("table/test/class_f1_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["class", "seg_a", "seg_v", "seg_av", "evt_a", "evt_v", "evt_av"]
    assert [row[0] for row in table["data"]] == list(CLASSES)

    assert {f"val/{name}" for name in METRIC_NAMES} <= set(summary)
    assert {f"test/{name}" for name in METRIC_NAMES} <= set(summary)
    assert {"train/bce", "train/total"} <= set(summary)
    assert config["model"]["_target_"] == "tests.helpers.tiny.TinyNet"
    assert config["trainer"]["max_epochs"] == 2
    assert summary["test/seg_type"] == pytest.approx(payload["seg_type"])


@pytest.mark.slow
def test_dashboard_without_attention_maps_and_off_rank_zero(tmp_path: Path) -> None:
    """A HAN-like output (no ``attn_maps``) gives timelines only; rank != 0 draws nothing."""
    root = tmp_path / "llp"
    write_dataset(root, "han", (1, 2, 1), seed=2)
    datamodule = LLPDataModule(root=root, feature_set="han", progress=False)
    dataset = datamodule.split("val")
    torch.manual_seed(0)
    module = AVVPModule(network=TinyNet(class_wise=False), metrics={"gating": "modality"})
    module.train()
    dashboard = Dashboard(figures_dir=tmp_path / "figures", num_videos=5)
    snapshot = dashboard.validation_snapshot(module, dataset)
    assert module.training
    assert snapshot["filenames"] == dataset.filenames
    assert snapshot["attention"] is None
    assert snapshot["pred_audio"].shape == (2, 10, 25)
    np.testing.assert_array_equal(snapshot["gt_audio"], dataset.annotations.gt_audio)
    paths = dashboard.write_validation_figures(snapshot, epoch=7)
    assert [p.parent.name for p in paths["timeline"]] == ["epoch_007"] * 2
    assert paths["attention"] == []

    elsewhere = Dashboard(figures_dir=tmp_path / "rank1")
    trainer = SimpleNamespace(
        is_global_zero=False, fast_dev_run=False, sanity_checking=False, current_epoch=0
    )
    elsewhere.on_validation_epoch_end(trainer, module)
    # test diagnostics present: only the rank keeps rank 1 from writing them
    f1 = {key: np.full(25, 50.0) for key in CLASS_F1_KEYS}
    module.test_outputs = {"diagnostics": SimpleNamespace(class_f1=f1)}
    elsewhere.on_test_end(trainer, module)
    assert not (tmp_path / "rank1").exists()


@pytest.mark.parametrize(
    ("choice", "types"),
    [
        ("default", (CSVLogger, WandbLogger)),
        ("csv", (CSVLogger,)),
        ("tensorboard", (TensorBoardLogger,)),
        ("wandb", (WandbLogger,)),
        ("none", ()),
    ],
)
def test_logger_choices(
    choice: str, types: tuple[type, ...], tmp_path: Path, restore_hydra_config: None
) -> None:
    cfg = run_config("train", [*NO_MODEL, f"logger={choice}"], tmp_path, tmp_path / "data")
    loggers = instantiate_group(cfg.get("logger"))
    assert tuple(type(lg) for lg in loggers) == types
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            assert logger._wandb_init["mode"] == "disabled"  # conftest / make test
            assert logger._wandb_init["project"] == "avvp-lit"
            assert logger._wandb_init["dir"] == str(tmp_path)
            assert logger._log_model is False


def test_train_defaults_to_wandb_offline_and_the_dashboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_hydra_config: None
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = run_config("train", NO_MODEL, tmp_path, tmp_path / "data")
    assert set(cfg.logger) == {"csv", "wandb"}
    assert cfg.logger.wandb.mode == "offline"
    assert cfg.callbacks.dashboard.figures_dir == str(tmp_path / "figures")
    monkeypatch.setenv("WANDB_MODE", "online")
    assert run_config("train", NO_MODEL, tmp_path, tmp_path).logger.wandb.mode == "online"


def _hydra_job(overrides: list[str], hydra_overrides: list[str]) -> None:
    cfg = compose_raw(NO_MODEL + overrides + hydra_overrides, "train", return_hydra_config=True)
    HydraConfig().set_config(cfg)


def test_multirun_jobs_share_a_group_tagged_with_overrides(
    tmp_path: Path, restore_hydra_config: None
) -> None:
    sweep = tmp_path / "multiruns" / "ablation"
    hydra_overrides = ["hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep}"]
    groups = []
    for seed in (1, 2):
        _hydra_job([f"seed={seed}", "optimizer.lr=0.001"], hydra_overrides)
        group, tags = wandb_group_and_tags()
        groups.append(group)
        assert tags == [DEFAULT_EXPERIMENT, *NO_MODEL, f"seed={seed}", "optimizer.lr=0.001"]
        logger = wandb_logger(save_dir=tmp_path / str(seed), mode="disabled")
        assert logger._wandb_init["group"] == str(sweep)
        assert logger._wandb_init["tags"] == tags
    assert groups == [str(sweep)] * 2

    _hydra_job(["seed=3"], [])
    assert wandb_group_and_tags() == (None, [DEFAULT_EXPERIMENT, *NO_MODEL, "seed=3"])
    HydraConfig.instance().cfg = None
    assert wandb_group_and_tags() == (None, [])


def test_fast_dev_run_draws_nothing(tmp_path: Path) -> None:
    dashboard = Dashboard(figures_dir=tmp_path / "figures")
    trainer = SimpleNamespace(is_global_zero=True, fast_dev_run=True, sanity_checking=False)
    dashboard.on_validation_epoch_end(trainer, L.LightningModule())
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize(
    ("max_epochs", "due"),
    [(10, [3, 7, 9]), (8, [3, 7]), (-1, [3, 7, 11]), (None, [3, 7, 11])],
)
def test_figures_every_n_epochs_and_at_the_last(max_epochs: int | None, due: list[int]) -> None:
    dashboard = Dashboard(figures_dir="unused", every_n_epochs=4)
    epochs = range(max_epochs if max_epochs and max_epochs > 0 else 12)
    trainers = [SimpleNamespace(current_epoch=e, max_epochs=max_epochs) for e in epochs]
    assert [t.current_epoch for t in trainers if dashboard._due(t)] == due
