"""`avvp-report` on a fabricated sweep directory: exact aggregates, Δ intervals from the
per-video scores, marks only where they exclude 0, failed jobs listed."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from avvp_lit.analysis.ablation import build_report, display_frame, override_key, write_report
from avvp_lit.cli.report import main
from avvp_lit.metrics import METRIC_NAMES, dataset_scores
from avvp_lit.viz.ablation import mean_curve
from tests.helpers.sweeps import RULE, SHARED, SHIFT, base_scores, make_sweep


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return make_sweep(tmp_path / "sweep")


def expected_numbers(variant: str, seeds) -> np.ndarray:
    """(S, 10) the ten numbers of each listed seed, computed from the scores."""
    return np.array(
        [
            [dataset_scores(base_scores(s) + SHIFT[variant][s])[n] for n in METRIC_NAMES]
            for s in seeds
        ]
    )


def test_override_keys_come_from_hydras_parser() -> None:
    assert override_key("+variant=x") == "variant"
    assert override_key("++a.b=1") == "a.b"
    assert override_key("~loss.terms.x") == "~loss.terms.x"
    assert override_key("model/secm=none") == "model/secm"


def test_groups_means_stds_and_deltas_are_exact(sweep: Path) -> None:
    report = build_report(sweep, resamples=400)
    assert [v.label for v in report.variants] == ["full", "no_cafd", "tiny", "han"]
    assert report.reference is report.variant("full")
    assert report.shared == tuple(sorted(SHARED))
    full, no_cafd, tiny, han = report.variants
    assert (full.n, no_cafd.n, han.n) == (3, 3, 2) and han.seeds == ["1", "2"]
    for variant in (full, no_cafd, han):
        seeds = [int(s) for s in variant.seeds]
        numbers = expected_numbers(variant.label, seeds)
        for i, name in enumerate(METRIC_NAMES):
            assert variant.mean[name] == pytest.approx(numbers[:, i].mean(), abs=1e-9)
            assert variant.std[name] == pytest.approx(numbers[:, i].std(ddof=1), abs=1e-9)
    reference = expected_numbers("full", [1, 2, 3])
    # han is paired on seeds 1 and 2 only: its Δ is over those, not over all of full
    paired = expected_numbers("han", [1, 2]) - reference[:2]
    assert np.allclose([han.delta(n) for n in METRIC_NAMES], paired.mean(0), atol=1e-9)
    assert han.interval.seeds == 2 and no_cafd.interval.seeds == 3
    assert full.interval is None


def test_marks_only_where_the_interval_excludes_zero(sweep: Path) -> None:
    report = build_report(sweep, resamples=2000)
    no_cafd, tiny = report.variant("no_cafd"), report.variant("tiny")
    for name in METRIC_NAMES:
        low, high = no_cafd.bounds(name)
        assert high < 0 and no_cafd.resolved(name)
        low, high = tiny.bounds(name)
        assert low < 0 < high and not tiny.resolved(name)
        assert low <= tiny.delta(name) <= high


def test_failed_run_is_listed_not_averaged(sweep: Path) -> None:
    report = build_report(sweep, resamples=100)
    assert [job.name for job in report.failed] == ["11"]
    assert "no metrics.json" in report.failed[0].problem


def test_a_job_without_video_scores_gets_no_interval(sweep: Path) -> None:
    (sweep / "4" / "video_scores.tsv").unlink()  # no_cafd, seed 2
    report = build_report(sweep, resamples=100)
    no_cafd = report.variant("no_cafd")
    assert no_cafd.interval is None and "job 4 has no video_scores.tsv" in no_cafd.interval_problem
    assert not no_cafd.resolved("seg_type")
    i = METRIC_NAMES.index("seg_type")
    means = [expected_numbers(v, [1, 2, 3])[:, i].mean() for v in ("no_cafd", "full")]
    assert no_cafd.delta("seg_type") == pytest.approx(means[0] - means[1], abs=1e-9)


def test_two_jobs_of_one_seed_are_not_paired_silently(sweep: Path) -> None:
    """A rerun of seed 2 of no_cafd (another folder, same overrides) makes the pairing
    ambiguous: no interval, and the report says why."""
    shutil.copytree(sweep / "4", sweep / "4_rerun")
    no_cafd = build_report(sweep, resamples=100).variant("no_cafd")
    assert no_cafd.n == 4 and no_cafd.interval is None
    assert "more than one finished job for 2" in no_cafd.interval_problem


def report_output(sweep: Path, resamples: int, capsys, monkeypatch) -> str:
    """What `avvp-report SWEEP --resamples N` prints on a wide terminal (it must exit 0)."""
    monkeypatch.setenv("COLUMNS", "250")
    assert main([str(sweep), "--resamples", str(resamples)]) == 0
    return capsys.readouterr().out


def test_cli_writes_md_csv_png(
    sweep: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = report_output(sweep, 1000, capsys, monkeypatch)
    assert "two-level paired bootstrap, 1000 resamples" in printed
    assert "11 (variant=han seed=3)" in printed
    md = (sweep / "ablation.md").read_text()
    assert "two-level paired bootstrap" in md and "excludes 0" in md
    assert "| `han` | 2 | 1 |" in md
    no_cafd_delta = [line for line in md.splitlines() if line.startswith("| `no_cafd` | 3 | ")]
    assert no_cafd_delta and "*" in no_cafd_delta[-1]
    tiny_delta = [line for line in md.splitlines() if line.startswith("| `tiny` | 3 | ")]
    assert tiny_delta and "*" not in tiny_delta[-1]
    table = list(csv.DictReader((sweep / "ablation.csv").open()))
    assert [r["variant"] for r in table] == ["full", "no_cafd", "tiny", "han"]
    han = table[3]
    assert (han["n_seeds"], han["n_failed"], han["failed_runs"]) == ("2", "1", "11")
    assert han["paired_seeds"] == "2"
    assert float(han["seg_type_low"]) <= float(han["seg_type_delta"]) <= float(han["seg_type_high"])
    png = (sweep / "ablation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    frame = display_frame(sweep / "ablation.csv")
    assert frame.loc["no_cafd", "Δ Seg Type"].split(" ")[0].endswith("*")
    assert not frame.loc["tiny", "Δ Seg Type"].split(" ")[0].endswith("*")
    assert frame.loc["full", "Δ Seg Type"] == "–"


def test_reference_option_and_grid_labels(tmp_path: Path) -> None:
    root = tmp_path / "grid"
    for job, (weight, seed) in enumerate([(0.1, 1), (0.1, 2), (0.5, 1), (0.5, 2)]):
        folder = root / str(job)
        (folder / ".hydra").mkdir(parents=True)
        overrides = [f"loss.terms.cooccurrence.weight={weight}", f"seed={seed}"]
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        scores = np.full((4, 10), 0.1 * weight + 0.01 * seed)
        (folder / "metrics.json").write_text(json.dumps(dataset_scores(scores)))
    report = build_report(root, reference="cooccurrence.weight=0.5", resamples=50)
    assert [v.label for v in report.variants] == [
        "cooccurrence.weight=0.1",
        "cooccurrence.weight=0.5",
    ]
    assert report.variants[0].diff["seg_type"] == pytest.approx(-4.0)


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 2


def test_published_rows_recorded_by_real_data_runs_are_listed(sweep: Path, capsys) -> None:
    published = {"method": "HAN", "paper": "p", "source": "s", "metrics": {n: 50.0 for n in
                 METRIC_NAMES}}  # fmt: skip
    for metrics_file in sweep.glob("*/metrics.json"):
        payload = json.loads(metrics_file.read_text())
        metrics_file.write_text(json.dumps({**payload, "published": published}))
    assert main([str(sweep), "--resamples", "200"]) == 0
    text = (sweep / "ablation.md").read_text()
    assert "## Published rows" in text and "| published HAN |" in text
    assert "published rows" in capsys.readouterr().out


def test_synthetic_sweeps_list_no_published_rows(sweep: Path) -> None:
    assert main([str(sweep), "--resamples", "200"]) == 0
    assert "Published rows" not in (sweep / "ablation.md").read_text()


def test_the_regime_is_stated_above_the_tables(
    sweep: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = report_output(sweep, 200, capsys, monkeypatch)
    md = (sweep / "ablation.md").read_text()
    # full: seeds 1-3 peak at epochs 4, 5, 6 and train 6, 7, 8 of 8 epochs (the last
    # one to the cap); han: seeds 1-2 (3 failed) peak at 3, 4 and train 5, 6
    assert "| `full` | 3 | 7.0 (6–8) | 5.0 (4–6) | 2/3 |" in md
    assert "| `han` | 2 | 5.5 (5–6) | 3.5 (3–4) | 2/2 |" in md
    assert f"Stopping rule: {RULE}." in md
    assert "Data: 100 train / 30 val / 40 test videos." in md
    assert md.index("## Regime") < md.index("## Mean ± std")
    for text in (RULE, "7.0 (6–8)", "5.5 (5–6)"):
        assert text in printed, text
    assert printed.index(RULE) < printed.index("segment level, test F-score")
    assert (sweep / "ablation_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ablation_curves.png" in printed


@pytest.mark.parametrize("record", [None, "8 epochs", {"epochs": "8"}], ids=str)
def test_jobs_without_a_training_record_say_so(sweep: Path, record) -> None:
    for path in sweep.rglob("metrics.json"):
        payload = json.loads(path.read_text())
        if record is None:
            del payload["training"]
        else:
            payload["training"] = record
        path.write_text(json.dumps(payload))
    report = build_report(sweep, resamples=100)
    paths = write_report(report)
    assert "curves" not in paths and not (sweep / "ablation_curves.png").exists()
    md = (sweep / "ablation.md").read_text()
    assert "Regime: not recorded" in md
    assert "| `full` | 3 | – | – | – (3 not recorded) |" in md


def test_mean_curve_averages_the_seeds_still_training() -> None:
    mean, counts = mean_curve([[1.0, 2.0, 3.0], [3.0, 4.0], [5.0]])
    assert mean.tolist() == [3.0, 3.0, 3.0]
    assert counts.tolist() == [3, 2, 1]


def test_curves_are_drawn_when_the_reference_recorded_none(sweep: Path) -> None:
    """A sweep whose reference jobs predate the training records (a resumed old sweep)
    still gets its curves figure for the variants that have them."""
    for path in sweep.rglob("metrics.json"):
        if "variant=full" in (path.parent / ".hydra" / "overrides.yaml").read_text():
            payload = json.loads(path.read_text())
            del payload["training"]
            path.write_text(json.dumps(payload))
    paths = write_report(build_report(sweep, resamples=100))
    assert paths["curves"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
