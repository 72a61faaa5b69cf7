"""Resume anywhere, bit-exact: a run killed with SIGKILL mid-epoch, after its best epoch,
continued from last.ckpt in a new and in its own run directory, gives the uninterrupted
run's metrics, predictions and final weights exactly."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from avvp_lit.metrics import METRIC_NAMES
from avvp_lit.utils.lock import LOCK_NAME
from tests.helpers.training import finish, subprocess_train

# HAN on the tiny VALOR set learns here: validation Seg Type@AV falls after epoch 0 and
# rises again, so epoch 0 is the best of three and the resumed run must keep it.
LEARNING_RUN = (
    "model=han",
    "model/projection=valor",
    "loss=han",
    "optimizer.lr=1e-3",
    "data.batch_size=8",
    "trainer.max_epochs=3",
    "callbacks.rich_progress_bar=null",
)


def last_epoch(run_dir: Path) -> int | None:
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return None
    return torch.load(last, map_location="cpu", weights_only=True)["epoch"]


def kill_during_epoch(run_dir: Path, data_dir: Path, epoch: int) -> None:
    """Start the run and SIGKILL it as soon as epoch ``epoch - 1`` has been saved."""
    run = subprocess_train(run_dir, data_dir, *LEARNING_RUN)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    seen = None
    while time.time() < deadline and run.poll() is None:
        try:
            stat = last.stat()
            if (stat.st_mtime_ns, stat.st_size) != seen:  # read each new last.ckpt once
                seen = (stat.st_mtime_ns, stat.st_size)
                if last_epoch(run_dir) == epoch - 1:
                    break
        except (RuntimeError, EOFError, OSError):
            pass
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=60)
    assert last_epoch(run_dir) == epoch - 1, run.log_path.read_text()[-3000:]
    assert not (run_dir / "metrics.json").exists(), "the run finished before the kill"


def results(run_dir: Path) -> tuple[dict, dict, dict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with np.load(run_dir / "predictions.npz") as data:
        predictions = {k: data[k] for k in data.files}
    weights = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return metrics, predictions, weights


@pytest.mark.slow
def test_sigkilled_run_resumes_bit_exact_in_new_and_same_directory(
    tmp_path: Path, data_dir: Path
) -> None:
    straight = tmp_path / "straight"
    finish(subprocess_train(straight, data_dir, *LEARNING_RUN), timeout=600)
    logged = pd.read_csv(straight / "csv" / "metrics.csv").dropna(subset=["val/seg_type"])
    val = logged["val/seg_type"].tolist()
    assert len(set(val)) == 3, val  # the model learns: every epoch scores differently
    assert int(np.argmax(val)) == 0 and val[2] > val[1], val  # best epoch before the kill
    expected = results(straight)
    assert Path(expected[0]["checkpoint"]).name == "epoch_000.ckpt"

    killed = tmp_path / "killed"
    kill_during_epoch(killed, data_dir, epoch=2)
    assert (killed / LOCK_NAME).exists()  # SIGKILL leaves the lock behind: stale
    last = killed / "checkpoints" / "last.ckpt"
    moved = tmp_path / "moved"
    finish(subprocess_train(moved, data_dir, *LEARNING_RUN, f"ckpt_path={last}"), timeout=600)
    finish(subprocess_train(killed, data_dir, *LEARNING_RUN, f"ckpt_path={last}"), timeout=600)
    for run_dir in (moved, killed):
        metrics, predictions, weights = results(run_dir)
        assert Path(metrics["checkpoint"]).name == "epoch_000.ckpt"
        assert {n: metrics[n] for n in METRIC_NAMES} == {n: expected[0][n] for n in METRIC_NAMES}
        assert metrics["baselines"] == expected[0]["baselines"]
        # the validation curve travels in the checkpoints: the whole curve, as uninterrupted
        assert metrics["training"] == expected[0]["training"]
        assert metrics["training"]["val_seg_type"] == pytest.approx(val, abs=1e-12)
        assert predictions.keys() == expected[1].keys()
        for key, array in expected[1].items():
            assert np.array_equal(predictions[key], array), (run_dir.name, key)
        assert weights.keys() == expected[2].keys()
        for key, tensor in expected[2].items():
            assert torch.equal(weights[key], tensor), (run_dir.name, key)
        assert not (run_dir / LOCK_NAME).exists()
