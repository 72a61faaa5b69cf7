"""One run per run directory: a second run refuses naming the first; stale locks of
dead processes are taken over; locks from another host are reported with the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avvp_lit.utils.errors import EXIT_BAD_INPUT
from avvp_lit.utils.lock import LOCK_NAME, run_directory_lock
from tests.helpers.training import run_app


def test_a_second_run_in_a_directory_refuses(tmp_path: Path, monkeypatch, capsys) -> None:
    run_dir = tmp_path / "run"
    with run_directory_lock(run_dir):
        (run_dir / "train.log").write_text("the other run's log\n")  # all of it disposable
        code, err = run_app(
            "avvp_lit.cli.train",
            [
                "experiment=smoke",
                f"data.root={tmp_path / 'd'}",
                "data.generate=true",
                f"hydra.run.dir={run_dir}",
            ],
            monkeypatch,
            capsys,
        )
        assert code == EXIT_BAD_INPUT
        assert f"{run_dir} is in use by process {os.getpid()}" in err
        assert not (tmp_path / "d").exists()
        # the refused run must not clean up a folder that the other run holds
        assert (run_dir / LOCK_NAME).exists() and (run_dir / "train.log").exists()
    assert not (run_dir / LOCK_NAME).exists()


def test_stale_and_foreign_locks(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock = run_dir / LOCK_NAME
    lock.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": 0}))
    with run_directory_lock(run_dir):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0}))
    with pytest.raises(ValueError, match=f"in use by process 1 on elsewhere.*delete {lock}"):
        with run_directory_lock(run_dir):
            pass
    assert json.loads(lock.read_text())["pid"] == 1  # a foreign lock is left alone


def test_latest_points_to_the_newest_finished_run(tmp_path: Path) -> None:
    from avvp_lit.engine.rundir import point_latest

    runs = tmp_path / "outputs" / "train" / "runs"
    for name in ("2026-01-01_00-00-00", "2026-01-02_00-00-00"):
        (runs / name).mkdir(parents=True)
        link = point_latest(runs / name)
    assert link == tmp_path / "outputs" / "train" / "latest"
    assert link.resolve() == (runs / "2026-01-02_00-00-00").resolve()
    assert point_latest(tmp_path / "multirun" / "0") is None


def test_a_run_stopped_by_bad_input_leaves_no_folder(tmp_path: Path, monkeypatch, capsys):
    run_dir = tmp_path / "outputs" / "train" / "runs" / "now"
    code, _ = run_app(
        "avvp_lit.cli.train", ["seed=abc", f"hydra.run.dir={run_dir}"], monkeypatch, capsys
    )
    assert code == EXIT_BAD_INPUT and not run_dir.exists()


def test_only_folders_without_anything_logged_are_removed(tmp_path: Path) -> None:
    from avvp_lit.engine.rundir import remove_if_untouched

    for name, logged in (("fresh", None), ("trained", "csv/metrics.csv")):
        run_dir = tmp_path / name
        for path in (".hydra/config.yaml", "train.log", "config.yaml", "csv/hparams.yaml"):
            (run_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (run_dir / path).write_text("x")
        (run_dir / "wandb").mkdir()
        (run_dir / "checkpoints").mkdir()
        if logged:
            (run_dir / logged).write_text("epoch,train/total\n0,0.5\n")
        remove_if_untouched(run_dir)
    assert not (tmp_path / "fresh").exists()
    assert (tmp_path / "trained" / "csv" / "metrics.csv").is_file()
