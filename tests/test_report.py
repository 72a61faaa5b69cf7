"""`avvp-report` on a fabricated sweep directory: exact aggregates, failed runs listed."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from avvp_lit.metrics import METRIC_NAMES
from avvp_lit.report import build_report, diff_se, display_frame, main, override_key

PROTOCOL = {
    "gating": "global",
    "gate_audio": "global_prob",
    "gate_visual": "global_prob",
    "video_threshold": 0.5,
    "segment_threshold": 0.5,
    "class_thresholds": None,
    "comparison": ">=",
    "split": "test",
}
# variant -> seed -> seg_type; metric i of METRIC_NAMES is seg_type + OFFSET[i]
SEG_TYPE = {
    "full": {1: 50.0, 2: 52.0, 3: 54.0},
    "no_cafd": {1: 40.0, 2: 41.0, 3: 45.0},
    "han": {1: 30.0, 2: 30.0},  # seed 3 failed: no metrics.json
}
SHARED = ["ablation=components", "data.root=/data/x"]


OFFSET = {name: i - METRIC_NAMES.index("seg_type") for i, name in enumerate(METRIC_NAMES)}


def _metrics(seg_type: float) -> dict[str, float]:
    return {name: seg_type + OFFSET[name] for name in METRIC_NAMES}


def make_sweep(root: Path) -> Path:
    """Hydra's multirun layout: numbered job folders with .hydra/overrides.yaml."""
    job = 0
    for variant in SEG_TYPE:
        for seed in (1, 2, 3):
            folder = root / str(job)
            (folder / ".hydra").mkdir(parents=True)
            overrides = [*SHARED, f"variant={variant}", f"seed={seed}"]
            (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))
            if seed in SEG_TYPE[variant]:
                payload = {**_metrics(SEG_TYPE[variant][seed]), "protocol": PROTOCOL}
                (folder / "metrics.json").write_text(json.dumps(payload))
            job += 1
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return make_sweep(tmp_path / "sweep")


def test_override_keys() -> None:
    assert override_key("+variant=x") == "variant"
    assert override_key("++a.b=1") == "a.b"
    assert override_key("~loss.terms.x") == "~loss.terms.x"


def test_groups_means_stds_and_diffs_are_exact(sweep: Path) -> None:
    report = build_report(sweep)
    assert [v.label for v in report.variants] == ["full", "no_cafd", "han"]
    assert report.reference is report.variant("full")
    assert report.shared == tuple(sorted(SHARED))
    full, no_cafd, han = report.variants
    assert (full.n, no_cafd.n, han.n) == (3, 3, 2)
    assert no_cafd.seeds == ["1", "2", "3"] and han.seeds == ["1", "2"]
    for name in METRIC_NAMES:
        assert full.mean[name] == pytest.approx(52.0 + OFFSET[name])
        assert full.std[name] == pytest.approx(2.0)  # sample std of 50, 52, 54
        assert no_cafd.mean[name] == pytest.approx(42.0 + OFFSET[name])
        assert no_cafd.std[name] == pytest.approx(np.std([40, 41, 45], ddof=1))
        assert no_cafd.diff[name] == pytest.approx(-10.0)
        assert han.diff[name] == pytest.approx(-22.0)
        assert han.std[name] == pytest.approx(0.0)
        assert full.diff[name] == 0.0
    expected_se = math.sqrt(4 / 3 + np.var([40, 41, 45], ddof=1) / 3)
    assert diff_se(no_cafd, full, "seg_type") == pytest.approx(expected_se)


def test_failed_run_is_listed_not_averaged(sweep: Path) -> None:
    report = build_report(sweep)
    assert [run.name for run in report.failed] == ["8"]
    assert report.variant("han").mean["seg_type"] == pytest.approx(30.0)
    assert "no metrics.json" in report.failed[0].problem


def test_unreadable_metrics_counts_as_failed(sweep: Path) -> None:
    (sweep / "0" / "metrics.json").write_text("{not json")
    report = build_report(sweep)
    assert [run.name for run in report.failed] == ["0", "8"]
    assert report.variant("full").mean["seg_type"] == pytest.approx(53.0)


def test_cli_writes_md_csv_png(
    sweep: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert "52.00 ± 2.00" in printed and "8 (variant=han seed=3)" in printed
    md = (sweep / "ablation.md").read_text()
    assert "| `full` | 3 | 0 | 49.00 ± 2.00 |" in md  # seg_a = seg_type - 3
    assert "| `han` | 2 | 1 | 27.00 ± 0.00 |" in md
    assert "- `8` (" in md and "variant=han seed=3" in md
    assert "-10.00*" in md  # 10 points is far outside the seed spread
    rows = list(csv.DictReader((sweep / "ablation.csv").open()))
    assert [r["variant"] for r in rows] == ["full", "no_cafd", "han"]
    han = rows[2]
    assert (han["n_seeds"], han["n_failed"], han["failed_runs"]) == ("2", "1", "8")
    assert float(han["seg_type_mean"]) == pytest.approx(30.0)
    assert float(han["seg_type_diff"]) == pytest.approx(-22.0)
    assert float(rows[1]["evt_event_mean"]) == pytest.approx(42.0 + OFFSET["evt_event"])
    png = (sweep / "ablation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    frame = display_frame(sweep / "ablation.csv")
    assert frame.loc["full", "Seg Type"] == "52.00 ± 2.00"
    assert frame.loc["no_cafd", "Δ Seg Type"] == "-10.00"


def test_reference_option_and_grid_labels(tmp_path: Path) -> None:
    root = tmp_path / "grid"
    for job, (weight, seed) in enumerate([(0.1, 1), (0.1, 2), (0.5, 1), (0.5, 2)]):
        folder = root / str(job)
        (folder / ".hydra").mkdir(parents=True)
        overrides = [f"loss.terms.cooccurrence.weight={weight}", f"seed={seed}"]
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        (folder / "metrics.json").write_text(json.dumps(_metrics(10 * weight + seed)))
    report = build_report(root, reference="cooccurrence.weight=0.5")
    assert [v.label for v in report.variants] == [
        "cooccurrence.weight=0.1",
        "cooccurrence.weight=0.5",
    ]
    assert report.variants[0].diff["seg_type"] == pytest.approx(-4.0)


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 2
