"""What a run prints, as a user sees it (the console scripts in a subprocess, output
redirected): plain progress lines and a filled train.log, no third-party noise,
parameter counts in the model summary, a `latest` pointer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.training import tiny_root

pytestmark = pytest.mark.slow


NOISE = ("litlogger", "litmodels", "💡", "LeafSpec", "anonymous setting", "Total FLOPs")


def run_redirected(module: str, args: list[str], cwd: Path) -> str:
    """Run ``python -m module args`` with stdout and stderr going to a file (no
    terminal); returns what it printed."""
    out = cwd / f"{module.rsplit('.', 1)[-1]}.out"
    with out.open("w") as stream:
        code = subprocess.call(
            [sys.executable, "-m", module, *args],
            cwd=cwd,
            env={**os.environ, "WANDB_MODE": "disabled"},
            stdout=stream,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    printed = out.read_text()
    assert code == 0, printed[-3000:]
    return printed


def test_redirected_runs_log_progress_lines_and_stay_quiet(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "outputs" / "train" / "runs" / "now"
    root = tiny_root(data_dir, "valor")
    args = ["experiment=smoke", f"data.root={root}", "model=han", "model/projection=valor"]
    args += ["loss=han", "logger=csv", f"hydra.run.dir={run_dir}"]
    printed = run_redirected("avvp_lit.cli.train", args, tmp_path)
    log = (run_dir / "train.log").read_text()
    assert "epoch 1/1  step 4/4  loss " in log and " videos/s " in log
    assert "epoch 1 validation: seg Type@AV" in log
    assert "GPU available" in printed  # Lightning's own lines do reach this output
    assert "Trainable" not in printed and "trainable parameters of" in printed
    for noise in NOISE:
        assert noise not in printed + log, noise
    latest = tmp_path / "outputs" / "train" / "latest"
    assert latest.resolve() == run_dir.resolve()

    (checkpoint,) = (run_dir / "checkpoints").glob("epoch_*.ckpt")
    evaluated = tmp_path / "evaluated"
    args = [f"ckpt={checkpoint}", f"data.root={root}", "logger=csv", f"hydra.run.dir={evaluated}"]
    printed = run_redirected("avvp_lit.cli.evaluate", args, tmp_path)
    assert "tiled video-level" in printed and "GPU available" in printed
    for noise in NOISE:
        assert noise not in printed + (evaluated / "evaluate.log").read_text(), noise
