"""What a run prints: plain progress lines and a filled train.log without a terminal,
no third-party noise, parameter counts in the model summary, a `latest` pointer."""

from __future__ import annotations

from pathlib import Path

from tests.training import run_app, tiny_root


def test_redirected_run_logs_progress_lines_and_stays_quiet(
    tmp_path: Path, data_dir: Path, monkeypatch, capfd, recwarn
) -> None:
    run_dir = tmp_path / "outputs" / "train" / "runs" / "now"
    args = [
        "experiment=smoke",
        f"data.root={tiny_root(data_dir, 'valor')}",
        "model=han",
        "model/projection=valor",
        "loss=han",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
    ]
    code, err = run_app("avvp_lit.train", args, monkeypatch, capfd)
    assert code in (None, 0), err
    log = (run_dir / "train.log").read_text()
    assert "epoch 1/1  step 4/4  loss " in log and " videos/s " in log
    assert "epoch 1 validation: seg Type@AV" in log
    text = run_app.last_stdout + err + log
    assert "Trainable" not in text and "trainable parameters of" in text
    for noise in ("litlogger", "LeafSpec", "anonymous setting", "Total FLOPs"):
        assert noise not in text, noise
    assert not [w for w in recwarn if "LeafSpec" in str(w.message)]
    latest = tmp_path / "outputs" / "train" / "latest"
    assert latest.resolve() == run_dir.resolve()
