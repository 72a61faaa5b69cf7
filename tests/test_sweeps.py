"""The sweep configs: the jobs they generate, the variants they compose, the launchers.

Composition checks run without training (Hydra's compose API and the basic sweeper's
own job expansion). One real 2-job multirun on tiny data proves the joblib launcher +
DataLoader workers with the fork context end to end; a stub task function proves an
Optuna study persists in SQLite (sqlalchemy<2) and resumes by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from avvp_lit.analysis.ablation import build_report
from avvp_lit.data.features import FEATURE_SETS
from tests.helpers.training import compose_raw

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

VARIANTS = (
    "full",
    "no_cafd",
    "cafd_no_background",
    "no_secm",
    "no_lgsf",
    "no_cross_fgse",
    "no_cooccurrence",
    "no_reconstruction",
    "no_orthogonality",
    "han",
)
ALL_TERMS = {"video_bce", "pseudo_label", "reconstruction", "orthogonality", "cooccurrence"}


def _compose(overrides: list[str]) -> DictConfig:
    return compose_raw(overrides, "train", return_hydra_config=True)


def sweep_jobs(cfg: DictConfig, extra: list[str] | None = None) -> list[list[str]]:
    """The job overrides Hydra's basic sweeper generates from ``hydra.sweeper.params``
    (plus command-line sweep overrides ``extra``), in launch order."""
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    parsed = OverridesParser.create().parse_overrides([*params, *(extra or [])])
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [job for batch in batches for job in batch]


def _terms(cfg: DictConfig) -> dict[str, DictConfig]:
    return {name: term for name, term in cfg.loss.terms.items() if term is not None}


# --------------------------------------------------------------------------- sweeps


def test_components_sweep_generates_every_variant_times_three_seeds() -> None:
    cfg = _compose(["ablation=components"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    jobs = sweep_jobs(cfg)
    assert len(jobs) == 30
    assert jobs[:2] == [["seed=1", "variant=full"], ["seed=1", "variant=no_cafd"]]
    assert {tuple(job) for job in jobs} == {
        (f"seed={seed}", f"variant={variant}") for seed in (1, 2, 3) for variant in VARIANTS
    }
    # command-line sweeps replace the config's lists
    subset = sweep_jobs(cfg, ["variant=full,han", "seed=4,5"])
    assert subset == [
        ["seed=4", "variant=full"],
        ["seed=4", "variant=han"],
        ["seed=5", "variant=full"],
        ["seed=5", "variant=han"],
    ]


def test_methods_sweep_compares_each_method_with_its_own_network_and_loss() -> None:
    cfg = _compose(["ablation=methods"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    jobs = sweep_jobs(cfg)
    assert jobs[:3] == [
        ["seed=1", "variant=mmcse"],
        ["seed=1", "variant=valor"],
        ["seed=1", "variant=han"],
    ]
    assert len(jobs) == 9
    networks = {}
    for variant in ("mmcse", "valor", "han"):
        job = _compose(["ablation=methods", f"variant={variant}", "seed=1"])
        networks[variant] = job.model
        for key in ("trainer.max_epochs", "scheduler", "callbacks.early_stopping"):
            assert OmegaConf.select(job, key) == OmegaConf.select(cfg, key), (variant, key)
        assert job.metrics.gating == "global"
        # the hybrid attention encoders learn at their own rate (conf/variant/han.yaml)
        assert job.optimizer.lr == (2.5e-3 if variant == "mmcse" else 5e-4)
    assert set(_terms(_compose(["ablation=methods", "variant=valor"]))) == {
        "video_bce",
        "pseudo_label",
    }
    valor = networks["valor"]
    # VALOR's published encoder, whatever the profile sets for MM-CSE
    assert (valor.name, valor.hidden_dim, valor.num_layers) == ("valor", 256, 4)
    assert (valor.enhancement.num_heads, valor.enhancement.ffn_dim) == (8, 1024)
    assert "class_dim" not in valor and "class_dim" not in networks["han"]
    assert networks["mmcse"].name == "mmcse" and networks["mmcse"].class_dim == 32
    assert networks["han"].name == "han" and networks["han"].num_layers == 1


EXPECTED = {
    # variant: (decoupling target suffix, background, secm intra/cross, lgsf intra/cross,
    #           loss terms removed)
    "full": ("ClassAwareDecoupling", True, (True, True), (True, True), set()),
    "no_cafd": ("SharedDecoupling", None, (True, True), (True, True),
                {"reconstruction", "orthogonality"}),
    "cafd_no_background": ("ClassAwareDecoupling", False, (True, True), (True, True),
                           {"orthogonality"}),
    "no_secm": ("ClassAwareDecoupling", True, (False, False), (True, True), {"cooccurrence"}),
    "no_lgsf": ("ClassAwareDecoupling", True, (True, True), (False, False), set()),
    "no_cross_fgse": ("ClassAwareDecoupling", True, (True, False), (True, False), set()),
    "no_cooccurrence": ("ClassAwareDecoupling", True, (True, True), (True, True),
                        {"cooccurrence"}),
    "no_reconstruction": ("ClassAwareDecoupling", True, (True, True), (True, True),
                          {"reconstruction"}),
    "no_orthogonality": ("ClassAwareDecoupling", True, (True, True), (True, True),
                         {"orthogonality"}),
}  # fmt: skip


def _batch(size: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)

    def binary(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) < 0.2).float()

    return {
        **{
            key: torch.rand(size, *shape, generator=generator)
            for key, shape in FEATURE_SETS["valor"].input_shapes.items()
        },
        "label": binary(size, 25),
        "pl_audio": binary(size, 10, 25),
        "pl_visual": binary(size, 10, 25),
        "index": torch.arange(size),
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_composes_and_its_network_and_loss_agree(variant: str) -> None:
    cfg = _compose(["ablation=components", f"variant={variant}", "seed=1"])
    assert cfg.hydra.runtime.choices.variant == variant
    terms = _terms(cfg)
    if variant == "han":
        assert cfg.model._target_.endswith("HolisticParsingNetwork")
        assert cfg.model.projection.feature_set == "valor" == cfg.data.feature_set
        assert set(terms) == {"video_bce", "modality_bce"}
        assert cfg.model.num_layers == 1
    else:
        target, background, secm, lgsf, removed = EXPECTED[variant]
        assert cfg.model._target_.endswith("ClassWiseParsingNetwork")
        assert cfg.model.decoupling._target_.endswith(target)
        assert cfg.model.decoupling.get("background") == background
        assert (cfg.model.secm.intra, cfg.model.secm.cross) == secm
        assert (cfg.model.lgsf.intra, cfg.model.lgsf.cross) == lgsf
        assert set(terms) == ALL_TERMS - removed
        if variant == "no_cross_fgse":
            assert list(terms["cooccurrence"].maps) == ["aa", "vv"]
    # the network's outputs satisfy every loss term that remains
    torch.manual_seed(0)
    network, loss = instantiate(cfg.model), instantiate(cfg.loss)
    values = loss(network(*(_batch()[k] for k in ("audio", "visual", "visual_st"))), _batch())
    assert set(values) == set(terms) | {"total"}
    assert torch.isfinite(values["total"])


def test_profiles_set_the_training_length() -> None:
    converged = _compose(["ablation=components"])  # the default: what make ablation runs
    smoke = _compose(["ablation=components", "ablation/profile=smoke"])
    full = _compose(["ablation=components", "ablation/profile=full"])
    assert smoke.trainer.max_epochs == 1 and "early_stopping" not in smoke.callbacks
    stopping = converged.callbacks.early_stopping
    assert stopping._target_ == "lightning.pytorch.callbacks.EarlyStopping"
    selection = converged.callbacks.model_checkpoint
    assert (stopping.monitor, stopping.mode) == (selection.monitor, selection.mode)
    assert (stopping.monitor, stopping.mode, stopping.patience) == ("val/seg_type", "max", 3)
    assert converged.trainer.max_epochs == 9
    assert (converged.model.class_dim, converged.model.ffn_dim, converged.model.num_layers) == (
        32,
        128,
        1,
    )
    assert (full.optimizer.lr, full.data.batch_size, full.scheduler.step_size) == (1e-4, 64, 10)
    assert full.trainer.max_epochs == 60 and "early_stopping" not in full.callbacks
    # the published network in the full profile
    assert (full.model.class_dim, full.model.ffn_dim, full.model.num_layers) == (128, 512, 4)
    # every variant of one profile trains with the same schedule and stopping rule; HAN
    # keeps its own sizes and learning rate
    for profile in (converged, smoke):
        choice = f"ablation/profile={profile.hydra.runtime.choices['ablation/profile']}"
        for variant in ("no_cafd", "han"):
            other = _compose(["ablation=components", choice, f"variant={variant}"])
            for key in (
                "trainer.max_epochs",
                "data.batch_size",
                "metrics.gating",
                "scheduler",
                "callbacks.early_stopping",
            ):
                assert OmegaConf.select(other, key) == OmegaConf.select(profile, key), key
            own_lr = 5e-4 if variant == "han" else profile.optimizer.lr
            assert other.optimizer.lr == own_lr
    han = _compose(["ablation=components", "variant=han"])
    assert "class_dim" not in han.model and han.model.hidden_dim == 512
    assert instantiate(han.model).hidden_dim == 512


def test_loss_weights_grid() -> None:
    cfg = _compose(["ablation=loss_weights"])
    jobs = sweep_jobs(cfg)
    assert len(jobs) == 2 * 3 * 3 * 3
    assert jobs[0] == [
        "seed=1",
        "loss.terms.cooccurrence.weight=0.1",
        "loss.terms.reconstruction.weight=0.5",
        "loss.terms.orthogonality.weight=0.1",
    ]
    weights = {tuple(o for o in job if not o.startswith("seed")) for job in jobs}
    assert len(weights) == 27
    one = _compose(["ablation=loss_weights", *jobs[-1]])
    assert _terms(one)["orthogonality"].weight == 0.5
    assert _terms(one)["cooccurrence"].weight == 0.5


def test_optuna_search_space() -> None:
    cfg = _compose(["hparams_search=mmcse_optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize" and sweeper.storage is None
    assert set(sweeper.params) == {
        "optimizer.lr",
        "loss.terms.cooccurrence.weight",
        "loss.terms.reconstruction.weight",
        "loss.terms.orthogonality.weight",
    }


# --------------------------------------------------------------------------- launchers


def test_submitit_slurm_preset_agrees_with_lightning_ddp() -> None:
    cfg = _compose(
        ["launcher=submitit_slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["tasks_per_node"] == cfg.trainer.devices == 4
    assert launcher["nodes"] == cfg.trainer.num_nodes == 2
    assert launcher["gpus_per_node"] == 4
    assert cfg.trainer.strategy == "ddp"
    # exactly one requeue owner: submitit requeues, Lightning's SLURM auto-requeue is off
    assert launcher["max_num_timeout"] > 0
    (plugin,) = cfg.trainer.plugins
    assert plugin._target_ == "lightning.pytorch.plugins.environments.SLURMEnvironment"
    assert plugin.auto_requeue is False
    environment = instantiate(plugin)
    assert environment.auto_requeue is False
    assert cfg.ckpt_path == "last"  # a resubmitted job continues from its last.ckpt
    # single-device trainers have no num_nodes: one node
    single = _compose(["launcher=submitit_slurm", "trainer=gpu"])
    assert OmegaConf.to_container(single.hydra.launcher, resolve=True)["nodes"] == 1


def test_joblib_and_basic_presets() -> None:
    basic = _compose([])
    assert basic.hydra.launcher._target_.endswith("BasicLauncher")
    assert basic.data.multiprocessing_context is None
    joblib = _compose(["launcher=joblib"])
    assert joblib.hydra.launcher._target_.endswith("JoblibLauncher")
    assert joblib.hydra.launcher.n_jobs == -1
    assert joblib.data.multiprocessing_context == "fork"


def _env() -> dict[str, str]:
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONWARNINGS="ignore")
    env.pop("OMP_NUM_THREADS", None)
    return env


@pytest.mark.slow
def test_joblib_multirun_with_fork_dataloader_workers(tmp_path: Path) -> None:
    """Two real jobs in parallel loky workers, DataLoader workers forked; then the report."""
    from avvp_lit.data.synthetic import generate

    data = generate(tmp_path / "tiny", features="valor", size="tiny", seed=0, progress=False)
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "avvp_lit.cli.train", "--multirun", "experiment=synthetic",
        "ablation=components", "launcher=joblib", "variant=full,han", "seed=1",
        "hydra.launcher.n_jobs=2",
        "data=synthetic_tiny", f"data.root={data}", "data.num_workers=1",
        "trainer.max_epochs=1", "trainer.limit_train_batches=1.0", "logger=csv",
        f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = build_report(sweep)
    assert [v.label for v in report.variants] == ["full", "han"]
    assert [v.n for v in report.variants] == [1, 1] and not report.failed
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0_full_seed1", "1_han_seed1"]
    config = OmegaConf.load(sweep / "0_full_seed1" / ".hydra" / "config.yaml")
    assert config.data.multiprocessing_context == "fork" and config.data.num_workers == 1


STUB_APP = """
import hydra


@hydra.main(version_base="1.3", config_path="pkg://avvp_lit.conf", config_name="train")
def main(cfg) -> float:
    # a cheap stand-in for the best validation seg_type of a training run
    import math

    terms = cfg.loss.terms
    return -abs(math.log10(cfg.optimizer.lr) + 3.5) - terms.cooccurrence.weight


if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
def test_optuna_sqlite_study_resumes_by_name(tmp_path: Path) -> None:
    import optuna

    app = tmp_path / "stub_app.py"
    app.write_text(textwrap.dedent(STUB_APP))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for session in range(2):
        command = [
            sys.executable, str(app), "experiment=synthetic", "hparams_search=mmcse_optuna",
            f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=resume_me",
            "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=1",
            f"hydra.sweep.dir={tmp_path / f'session{session}'}",
        ]  # fmt: skip
        done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        study = optuna.load_study(study_name="resume_me", storage=storage)
        assert len(study.trials) == 3 * (session + 1)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert 1e-5 <= study.best_params["optimizer.lr"] <= 2e-3
    assert (tmp_path / "session1" / "optimization_results.yaml").is_file()
