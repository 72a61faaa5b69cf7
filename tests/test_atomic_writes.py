"""Nothing that looks complete is ever truncated: a write that fails (a full disk,
simulated) leaves the previous file or no file, and no temporary behind; the commands
that resume do so after such a failure."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp_lit.engine.callbacks import AtomicCheckpointIO
from avvp_lit.utils.atomic import TMP_MARK, atomic_write_bytes
from tests.helpers.datasets import write_dataset


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if TMP_MARK in p.name]


def test_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "metrics.json"
    atomic_write_bytes(path, b'{"old": 1}')
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(path, b'{"new": 2}' * 1000)
    assert path.read_bytes() == b'{"old": 1}' and leftovers(tmp_path) == []


def test_checkpoint_written_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "epoch_003.ckpt"
    state = {"state_dict": {"w": torch.arange(10.0)}, "epoch": 3}
    io.save_checkpoint(state, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.arange(10.0))

    def half_then_full(checkpoint, filepath):
        Path(filepath).write_bytes(b"PK\x03\x04 half a checkpoint")
        disk_full()

    monkeypatch.setattr("lightning.fabric.plugins.io.torch_io._atomic_save", half_then_full)
    with pytest.raises(OSError):
        io.save_checkpoint({**state, "epoch": 4}, path)
    with pytest.raises(OSError):
        io.save_checkpoint(state, tmp_path / "last.ckpt")
    assert torch.load(path, weights_only=True)["epoch"] == 3
    assert not (tmp_path / "last.ckpt").exists() and leftovers(tmp_path) == []


def test_eval_json_is_not_left_empty(tmp_path: Path, monkeypatch, capsys) -> None:
    from avvp_lit.cli.eval import main as eval_main
    from avvp_lit.metrics.prediction_file import write_predictions

    root = tmp_path / "ds"
    names = write_dataset(root, "han", (2, 3, 3))["test"]
    rng = np.random.default_rng(0)
    predictions = {
        "global_prob": rng.random((3, 25)),
        "a_prob": rng.random((3, 25)),
        "v_prob": rng.random((3, 25)),
        "frame_prob": rng.random((3, 10, 2, 25)),
    }
    write_predictions(tmp_path / "p.npz", names, predictions)
    out = tmp_path / "scores.json"
    monkeypatch.setattr(os, "fsync", disk_full)
    assert eval_main([str(tmp_path / "p.npz"), "--annotations", str(root), "--json", str(out)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not out.exists() and leftovers(tmp_path) == []


def test_synth_removes_partials_of_killed_generations(tmp_path: Path) -> None:
    from avvp_lit.data.synthetic import generate

    out = tmp_path / "synthetic"
    abandoned = tmp_path / f".{out.name}.partial-{2**22 + 12345}"
    (abandoned / "CLAP").mkdir(parents=True)
    live = tmp_path / f".{out.name}.partial-{os.getppid()}"  # a running generation
    live.mkdir()
    generate(out, features="han", size="tiny", progress=False)
    assert not abandoned.exists()
    assert live.exists()  # another live process's partial is left alone
    assert (out / ".complete").exists()


def test_pack_resumes_after_damage_and_refuses_a_full_disk(tmp_path: Path, monkeypatch, capsys):
    from avvp_lit.cli.pack import main as pack_main
    from avvp_lit.data import pack as pack_module
    from avvp_lit.data.stores import open_store

    root = tmp_path / "ds"
    write_dataset(root, "han", (3, 2, 2))
    out = root / "features.h5"
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(b"\x89HDF\r\n\x1a\n truncated by a full disk")
    assert pack_main([str(root), str(out), "--resume"]) == 0
    assert "cannot be resumed" in capsys.readouterr().err
    assert len(open_store(root, None, "h5").ids()) == 7 and not partial.exists()

    class Usage:
        free = 1000

    monkeypatch.setattr(pack_module.shutil, "disk_usage", lambda path: Usage())
    assert pack_main([str(root), str(tmp_path / "again.h5")]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "GiB free" in err
    assert not (tmp_path / "again.h5").exists()
