"""Golden: the original evaluation code's numbers for ``eval_case_noisy.npz``, to 1e-9.

Reproduced by ``AVVPMetrics`` in shuffled batches and by ``avvp-eval`` run as a
entry point, for the three gating modes and both audio label files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp_lit.cli.eval import main as eval_main
from avvp_lit.data.annotations import load_split
from avvp_lit.metrics import METRIC_NAMES, AVVPMetrics

GATINGS = ("global", "modality", "mmcse")
AUDIO_LABELS = ("pre2024", "current")
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def golden(golden_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, float]]]:
    with np.load(golden_dir / "eval_case_noisy.npz") as archive:
        predictions = {name: archive[name] for name in archive.files}
    expected = json.loads((golden_dir / "eval_case_noisy.expected.json").read_text())
    assert sorted(expected) == sorted(f"{g}/{a}" for g in GATINGS for a in AUDIO_LABELS)
    return predictions, expected


def _assert_close(got: dict[str, float], want: dict[str, float], label: str) -> None:
    assert sorted(want) == sorted(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert abs(got[name] - want[name]) <= TOLERANCE, (
            f"{label} {name}: {got[name]} vs {want[name]}"
        )


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("audio_labels", AUDIO_LABELS)
def test_metric_reproduces_golden(golden, llp_dir, audio_labels, device):
    predictions, expected = golden
    split = load_split(llp_dir, "test", audio_labels=audio_labels)
    assert predictions["filenames"].tolist() == split.filenames
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(split)))
    tensors = {
        name: torch.from_numpy(predictions[name]).to(device)
        for name in ("global_prob", "a_prob", "v_prob", "frame_prob")
    }
    tensors["gt_audio"] = torch.from_numpy(split.gt_audio).to(device)
    tensors["gt_visual"] = torch.from_numpy(split.gt_visual).to(device)
    tensors["index"] = torch.arange(len(split), device=device)
    for gating in GATINGS:
        metric = AVVPMetrics(gating=gating).to(device)
        for rows in order.split(64):
            metric.update(**{name: value[rows] for name, value in tensors.items()})
        _assert_close(metric.compute(), expected[f"{gating}/{audio_labels}"], gating)


@pytest.mark.slow
def test_avvp_eval_reproduces_golden(golden, golden_dir, llp_dir, tmp_path, capsys):
    """All six cases through avvp-eval's entry point (``main(argv)``, what the console
    script calls; the script itself is run in tests/test_eval_cli.py)."""
    _, expected = golden
    for key in expected:
        gating, audio_labels = key.split("/")
        out = tmp_path / f"{gating}-{audio_labels}.json"
        argv = [
            str(golden_dir / "eval_case_noisy.npz"),
            "--annotations",
            str(llp_dir),
            "--gating",
            gating,
            "--audio-labels",
            audio_labels,
            "--json",
            str(out),
        ]
        assert eval_main(argv) == 0
        stdout = capsys.readouterr().out
        payload = json.loads(out.read_text())
        _assert_close(payload, expected[key], key)
        protocol = payload["protocol"]
        assert protocol["gating"] == gating and protocol["audio_labels"] == audio_labels
        assert protocol["split"] == "test" and protocol["videos"] == 1200
        assert f"gating {gating}" in stdout and "md5" in stdout
