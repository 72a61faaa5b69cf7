"""`avvp-bench models` runs both networks in subprocesses and writes the JSON report."""

from __future__ import annotations

import json

import pytest
import torch

from avvp_lit.bench.models import count_gflop
from avvp_lit.cli.bench import main as bench_main


@pytest.mark.slow
def test_bench_models_json(tmp_path):
    out = tmp_path / "models.json"
    args = ["models", "--json", str(out), "--batch-size", "2", "--steps", "1", "--warmup", "0"]
    assert bench_main([*args, "--threads", "1"]) == 0
    report = json.loads(out.read_text())
    for model in ("han", "mmcse"):
        for key in ("train_videos_per_s", "infer_videos_per_s", "peak_rss_mb"):
            assert report[model][key] > 0, (model, key)
    # fused=auto on a CPU in float32: the fused kernels (MM-CSE's; HAN has none)
    assert report["mmcse"]["fused"] and not report["han"]["fused"]
    assert report["settings"]["inputs"]["audio"] == [2, 64, 768]  # VALOR shapes
    ratio = report["mmcse"]["train_step_s"] / report["han"]["train_step_s"]
    assert report["step_time_ratio"] == pytest.approx(ratio)
    for model in ("han", "mmcse"):
        r = report[model]
        # a training step is at least forward + input-independent backward products
        assert r["train_gflop_per_video"] > 1.5 * r["infer_gflop_per_video"] > 0, model
        videos = report["settings"]["batch_size"]
        assert r["train_gflops"] == pytest.approx(
            r["train_gflop_per_video"] * videos / r["train_step_s"]
        )
    flops = report["mmcse"]["train_gflop_per_video"] / report["han"]["train_gflop_per_video"]
    assert report["flop_ratio"] == pytest.approx(flops)
    assert report["flop_ratio"] > 5.0  # 25 class tokens through 4 FGSE layers vs one HAN layer


def test_count_gflop_counts_matrix_products_per_video():
    fc = torch.nn.Linear(128, 64)
    x = torch.randn(3, 10, 128, requires_grad=True)  # 3 videos of 10 seconds
    forward = 2 * 10 * 128 * 64 / 1e9  # per video: one multiply-add per weight and row
    assert count_gflop(lambda: fc(x), 3) == pytest.approx(forward)
    # backward: gradients of the input and of the weight, one product each
    assert count_gflop(lambda: fc(x).sum().backward(), 3) == pytest.approx(3 * forward)


@pytest.mark.slow
def test_bench_models_runs_the_plain_blocks_in_bf16(tmp_path):
    out = tmp_path / "models.json"
    args = ["models", "--json", str(out), "--batch-size", "2", "--steps", "1", "--warmup", "0"]
    args += ["--threads", "1", "--models", "mmcse", "--precision", "bf16-mixed"]
    assert bench_main(args) == 0
    report = json.loads(out.read_text())
    assert report["settings"]["precision"] == "bf16-mixed"
    assert not report["mmcse"]["fused"]  # auto: plain under bf16
    assert report["mmcse"]["train_videos_per_s"] > 0
