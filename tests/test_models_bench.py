"""`avvp-bench models` runs both networks in subprocesses and writes the JSON report."""

from __future__ import annotations

import json

import pytest

from avvp_lit.bench import main as bench_main


@pytest.mark.slow
def test_bench_models_json(tmp_path):
    out = tmp_path / "models.json"
    args = ["models", "--json", str(out), "--batch-size", "2", "--steps", "1", "--warmup", "0"]
    assert bench_main([*args, "--threads", "1"]) == 0
    report = json.loads(out.read_text())
    for model in ("han", "mmcse"):
        for key in ("train_videos_per_s", "infer_videos_per_s", "peak_rss_mb"):
            assert report[model][key] > 0, (model, key)
    ratio = report["mmcse"]["train_step_s"] / report["han"]["train_step_s"]
    assert report["step_time_ratio"] == pytest.approx(ratio)
