"""Every bad input is one named line on stderr and exit status 2, before any work; a
debug switch shows the traceback. The Hydra apps run in-process here (as their console
scripts do), the argparse commands through ``main(argv)``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from avvp_lit.engine.builders import build_module
from avvp_lit.utils.errors import EXIT_BAD_INPUT
from tests.helpers.datasets import write_dataset
from tests.helpers.training import compose_raw, run_app


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    write_dataset(root, "valor", (4, 3, 3))
    return root


TRAIN_CASES = {
    "epochs as text": (["trainer.max_epochs=ten"], "trainer.max_epochs='ten' is not allowed"),
    "seed as text": (["seed=abc"], "seed='abc' is not allowed; it must be an integer"),
    "zero batch": (["data.batch_size=0"], "data.batch_size=0 is not allowed"),
    "negative batch": (["data.batch_size=-4"], "data.batch_size=-4 is not allowed"),
    "threshold": (["metrics.video_threshold=1.5"], "metrics.video_threshold=1.5"),
    "lr": (["optimizer.lr=0"], "optimizer.lr=0 is not allowed; it must be a number > 0"),
    "fused": (["fused=maybe"], "fused='maybe' is not allowed"),
    "gating": (["metrics.gating=max"], "metrics.gating='max' is not allowed"),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_config_errors_before_any_work(
    case: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    overrides, message = TRAIN_CASES[case]
    run_dir = tmp_path / "run"
    absent = tmp_path / "never_generated"
    # data.generate=true: a late check would generate synthetic data at `absent`
    args = [*overrides, f"data.root={absent}", "data.generate=true", f"hydra.run.dir={run_dir}"]
    code, err = run_app("avvp_lit.cli.train", args, monkeypatch, capsys)
    assert code == EXIT_BAD_INPUT
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avvp-train: error: "), err
    assert message in lines[0]
    assert not absent.exists()  # validated before the synthetic data would be generated
    assert not run_dir.exists()  # nothing but Hydra's files was there: the folder is gone


def test_mistyped_override_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    code, err = run_app(
        "avvp_lit.cli.train",
        ["trainer.max_epoch=3", f"hydra.run.dir={tmp_path}"],
        monkeypatch,
        capsys,
    )
    assert code == EXIT_BAD_INPUT and "max_epoch" in err and "Traceback" not in err


def test_data_errors_name_file_and_video(dataset: Path, tmp_path: Path, monkeypatch, capsys):
    video = (dataset / "AVVP_val_pd.csv").read_text().splitlines()[1].split("\t")[0][:11]
    (dataset / "CLIP/features" / f"{video}.npy").write_bytes(b"")
    common = ["experiment=smoke", "data=llp_valor", f"data.root={dataset}", "test=false"]
    code, err = run_app(
        "avvp_lit.cli.train",
        [*common, "data.in_memory=true", "data.progress=false", f"hydra.run.dir={tmp_path / 'a'}"],
        monkeypatch,
        capsys,
    )
    assert code == EXIT_BAD_INPUT, err
    assert f"video '{video}', modality 'visual'" in err and "not a readable .npy" in err
    assert "Traceback" not in err
    assert not (tmp_path / "a").exists()  # the loggers had started: still no folder left
    (dataset / "AVVP_train.csv").write_bytes(b"filename\tevent_labels\n\xff\xfe\n")
    code, err = run_app(
        "avvp_lit.cli.train", [*common, f"hydra.run.dir={tmp_path / 'b'}"], monkeypatch, capsys
    )
    assert code == EXIT_BAD_INPUT and "AVVP_train.csv:2: byte 0xff is not UTF-8" in err


def test_evaluate_and_parse_name_bad_checkpoints(
    dataset: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    text = tmp_path / "notes.ckpt"
    text.write_text("best epoch 3\n")
    for module, extra in (
        ("avvp_lit.cli.evaluate", ["data=llp_valor", f"data.root={dataset}"]),
        ("avvp_lit.cli.parse", [f"input={dataset}"]),
    ):
        for path, message in ((empty, "empty file"), (text, "not a"), (tmp_path / "x", "no such")):
            code, err = run_app(
                module,
                [f"ckpt={path}", *extra, f"hydra.run.dir={tmp_path / 'r'}"],
                monkeypatch,
                capsys,
            )
            assert code == EXIT_BAD_INPUT, (module, err)
            assert str(path) in err and message in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path: Path, monkeypatch, capsys) -> None:
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(
        sys, "argv", ["avvp-train", "experiment=smoke", "seed=abc", f"hydra.run.dir={tmp_path}"]
    )
    from avvp_lit.cli import train

    with pytest.raises(ValueError, match="seed='abc'"):
        train.main()
    from avvp_lit.cli.eval import main as eval_main

    with pytest.raises(ValueError, match="not found"):
        eval_main([str(tmp_path / "absent.npz"), "--annotations", str(tmp_path), "--debug"])


def test_argparse_commands_exit_2_with_one_line(dataset: Path, tmp_path: Path, capsys) -> None:
    from avvp_lit.cli.convert import main as convert_main
    from avvp_lit.cli.data import main as data_main
    from avvp_lit.cli.eval import main as eval_main
    from avvp_lit.cli.pack import main as pack_main
    from avvp_lit.cli.report import main as report_main
    from avvp_lit.cli.synth import main as synth_main

    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "x").write_text("x")
    cases = [
        (eval_main, [str(empty), "--annotations", str(dataset)], "empty.npz"),
        (data_main, ["check", str(tmp_path / "nowhere")], "nowhere"),
        (pack_main, [str(tmp_path / "nowhere"), str(tmp_path / "o.h5")], "nowhere"),
        (synth_main, [str(tmp_path / "occupied"), "--quiet"], "already exists"),
        (convert_main, [str(empty), str(tmp_path / "o.pt"), "--arch", "han"], "empty file"),
        (report_main, [str(tmp_path / "nowhere")], "nowhere"),
    ]
    for main, argv, message in cases:
        assert main(argv) == EXIT_BAD_INPUT, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ": error: " in err[0] and message in err[0], (argv, err)


@pytest.mark.slow
def test_late_data_error_leaves_no_wandb_run(dataset: Path, tmp_path: Path, monkeypatch, capsys):
    """The W&B offline run opens when the config is logged, before the data is read; a
    data error after that leaves no offline run that `wandb sync` would upload, also in
    a folder kept for what an earlier attempt left there."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for variable in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "wandb-home"))
    video = (dataset / "AVVP_train.csv").read_text().splitlines()[1].split("\t")[0][:11]
    (dataset / "CLAP/features" / f"{video}.npy").write_bytes(b"")
    run_dir = tmp_path / "run"
    earlier = run_dir / "checkpoints" / "earlier.ckpt"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier attempt's checkpoint")
    args = ["experiment=smoke", "data=llp_valor", f"data.root={dataset}", "logger=default"]
    args += ["data.in_memory=true", "data.progress=false", f"hydra.run.dir={run_dir}"]
    code, err = run_app("avvp_lit.cli.train", args, monkeypatch, capsys)
    assert code == EXIT_BAD_INPUT and f"video '{video}'" in err, err
    assert earlier.is_file() and (run_dir / "wandb").is_dir()  # W&B had started
    assert not list(tmp_path.rglob("offline-run-*"))
    shutil.rmtree(run_dir / "checkpoints")
    code, _ = run_app("avvp_lit.cli.train", args, monkeypatch, capsys)
    assert code == EXIT_BAD_INPUT and not run_dir.exists()


def test_blocks_that_do_not_feed_a_loss_term_are_a_config_error(
    dataset: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """model/secm=none makes no attention maps, which the co-occurrence term needs: a
    named config error when the run is built, not a KeyError at the first step."""
    run_dir = tmp_path / "run"
    args = ["experiment=smoke", "data=llp_valor", f"data.root={dataset}", "model/secm=none"]
    code, err = run_app(
        "avvp_lit.cli.train", [*args, f"hydra.run.dir={run_dir}"], monkeypatch, capsys
    )
    assert code == EXIT_BAD_INPUT and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "the blocks and the loss do not fit" in lines[0]
    assert "loss term 'cooccurrence' needs attention maps" in lines[0]
    assert "~loss.terms.cooccurrence" in lines[0] and not run_dir.exists()
    without_term = compose_raw([*args, "~loss.terms.cooccurrence"], "train")
    assert "cooccurrence" not in build_module(without_term).loss.terms


def test_train_without_an_experiment_names_the_recipes(tmp_path: Path, monkeypatch, capsys) -> None:
    """No default recipe: real data never trains the CPU demo schedule silently."""
    from tests.helpers import training

    monkeypatch.setattr(training, "with_experiment", list)
    args = ["data=llp_valor", f"data.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"]
    code, err = run_app("avvp_lit.cli.train", args, monkeypatch, capsys)
    assert code == EXIT_BAD_INPUT
    assert "You must specify 'experiment'" in err
    for recipe in ("mmcse_llp", "han_llp", "synthetic", "smoke"):
        assert recipe in err
    assert not (tmp_path / "run").exists()
