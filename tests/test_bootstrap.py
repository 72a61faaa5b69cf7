"""The paired bootstrap of `avvp-eval --compare` against a loop over resamples, its
degenerate case, and per-class thresholds in `avvp-eval`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp_lit.cli.eval import main as eval_main
from avvp_lit.metrics.bootstrap import paired_bootstrap, resample_indices, two_level_bootstrap
from avvp_lit.metrics.functional import METRIC_NAMES, dataset_scores
from avvp_lit.metrics.prediction_file import write_predictions
from tests.helpers.datasets import write_dataset


def loop_bootstrap(a: np.ndarray, b: np.ndarray, indices: np.ndarray) -> dict[str, np.ndarray]:
    """The same bootstrap written as loops: resample by resample, video by video."""
    n = len(a)

    def numbers(scores: np.ndarray, rows) -> np.ndarray:
        means = np.array([sum(scores[r, m] for r in rows) / len(rows) for m in range(10)])
        for start in (0, 5):
            means[start + 3] = (means[start] + means[start + 1] + means[start + 2]) / 3
        return 100 * means

    observed = numbers(b, range(n)) - numbers(a, range(n))
    resampled = np.array([numbers(b, rows) - numbers(a, rows) for rows in indices])
    extreme = [
        sum(
            abs(resampled[r, m] - observed[m]) >= abs(observed[m]) - 1e-12
            for r in range(len(indices))
        )
        for m in range(10)
    ]
    return {
        "delta": observed,
        "low": np.percentile(resampled, 2.5, axis=0),
        "high": np.percentile(resampled, 97.5, axis=0),
        "p_value": (1 + np.array(extreme)) / (1 + len(indices)),
    }


def test_vectorised_bootstrap_equals_the_loop() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random((9, 10)), rng.random((9, 10))
    indices = resample_indices(9, 40, seed=3)
    result = paired_bootstrap(a, b, indices)
    reference = loop_bootstrap(a, b, indices.numpy())
    for field, expected in reference.items():
        assert np.allclose(getattr(result, field), expected, atol=1e-9, rtol=0), field
    expected_a = dataset_scores(a)
    assert np.allclose(result.a, [expected_a[n] for n in METRIC_NAMES], atol=1e-9)
    again = paired_bootstrap(a, b, resample_indices(9, 40, seed=3))
    assert np.array_equal(again.low, result.low)
    other = paired_bootstrap(a, b, resample_indices(9, 40, seed=4))
    assert not np.array_equal(other.low, result.low)


@pytest.fixture
def split_and_predictions(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "ds"
    names = write_dataset(root, "han", (2, 2, 12))["test"]
    rng = np.random.default_rng(0)

    def predictions(shift: float) -> dict[str, np.ndarray]:
        frame = np.clip(rng.random((12, 10, 2, 25)) + shift, 0, 1)
        video = frame.max(axis=1)
        return {
            "global_prob": video.max(axis=1),
            "a_prob": video[:, 0],
            "v_prob": video[:, 1],
            "frame_prob": frame,
        }

    write_predictions(tmp_path / "a.npz", names, predictions(0.0))
    write_predictions(tmp_path / "b.npz", names, predictions(0.2))
    return root, tmp_path / "a.npz", tmp_path / "b.npz"


def test_identical_files_differ_by_zero(split_and_predictions, tmp_path: Path, capsys) -> None:
    root, a, _ = split_and_predictions
    out = tmp_path / "same.json"
    argv = ["--compare", str(a), str(a), "--annotations", str(root), "--json", str(out)]
    assert eval_main([*argv, "--resamples", "500"]) == 0
    printed = capsys.readouterr().out
    assert "paired bootstrap: 500 resamples of the 12 videos" in printed
    for row in json.loads(out.read_text())["metrics"].values():
        assert row["delta"] == row["low"] == row["high"] == 0.0 and row["p_value"] == 1.0


def test_compare_reports_each_number_with_its_interval(
    split_and_predictions, tmp_path: Path, capsys
) -> None:
    root, a, b = split_and_predictions
    out = tmp_path / "cmp.json"
    argv = ["--compare", str(a), str(b), "--annotations", str(root), "--json", str(out)]
    assert eval_main([*argv, "--resamples", "300", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if "│" in line]
    assert len(rows) == len(METRIC_NAMES) and max(len(line) for line in rows) <= 80
    payload = json.loads(out.read_text())
    assert payload["videos"] == 12 and payload["seed"] == 1
    for name in METRIC_NAMES:
        row = payload["metrics"][name]
        assert row["delta"] == pytest.approx(row["b"] - row["a"], abs=1e-9)
        assert row["low"] <= row["delta"] <= row["high"] and 0 < row["p_value"] <= 1
    single = tmp_path / "b.json"
    assert eval_main([str(b), "--annotations", str(root), "--json", str(single)]) == 0
    scored = json.loads(single.read_text())
    assert all(payload["metrics"][n]["b"] == pytest.approx(scored[n]) for n in METRIC_NAMES)


def test_class_thresholds_file(split_and_predictions, tmp_path: Path, capsys) -> None:
    root, a, _ = split_and_predictions
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("video: [" + ", ".join(["1.0"] * 25) + "]\n")
    out = tmp_path / "t.json"
    argv = [str(a), "--annotations", str(root), "--json", str(out)]
    assert eval_main([*argv, "--class-thresholds", str(thresholds)]) == 0
    payload = json.loads(out.read_text())
    assert payload["protocol"]["class_thresholds"]["video"] == [1.0] * 25
    # a video threshold of 1.0 keeps only probabilities of exactly 1: no event survives
    assert eval_main([*argv]) == 0
    plain = json.loads(out.read_text())
    assert payload["seg_a"] < plain["seg_a"]
    thresholds.write_text("video: [0.5, 0.5]\n")
    capsys.readouterr()
    assert eval_main([*argv, "--class-thresholds", str(thresholds)]) == 2
    err = capsys.readouterr().err
    assert str(thresholds) in err and "expected (25,)" in err


def test_resampling_is_a_matrix_product_of_counts() -> None:
    indices = torch.tensor([[0, 0, 2], [1, 2, 2]])
    from avvp_lit.metrics.bootstrap import resample_counts

    assert resample_counts(indices).tolist() == [[2.0, 0.0, 1.0], [0.0, 1.0, 2.0]]


def loop_two_level(a: np.ndarray, b: np.ndarray, resamples: int, seed: int) -> dict:
    """The two-level bootstrap as loops over resamples, seed slots and videos, drawing
    the same random numbers in the same order (the seeds, then one video draw per
    resample that every drawn seed shares)."""
    seeds, videos, _ = a.shape
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.randint(seeds, (resamples, seeds), generator=generator).numpy()
    shared = torch.randint(videos, (resamples, videos), generator=generator).numpy()

    def numbers(scores: np.ndarray, rows) -> np.ndarray:
        means = np.array([sum(scores[r, m] for r in rows) / len(rows) for m in range(10)])
        for start in (0, 5):
            means[start + 3] = (means[start] + means[start + 1] + means[start + 2]) / 3
        return 100 * means

    resampled = np.zeros((resamples, 10))
    for r in range(resamples):
        for slot in range(seeds):
            s, rows = drawn[r, slot], shared[r]
            resampled[r] += (numbers(b[s], rows) - numbers(a[s], rows)) / seeds
    everything = range(videos)
    delta = np.mean(
        [numbers(b[s], everything) - numbers(a[s], everything) for s in range(seeds)], 0
    )
    return {
        "delta": delta,
        "low": np.percentile(resampled, 2.5, axis=0),
        "high": np.percentile(resampled, 97.5, axis=0),
    }


def test_two_level_bootstrap_equals_the_loop() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.random((3, 7, 10)), rng.random((3, 7, 10))
    result = two_level_bootstrap(a, b, resamples=30, seed=2)
    reference = loop_two_level(a, b, 30, 2)
    for field, expected in reference.items():
        assert np.allclose(getattr(result, field), expected, atol=1e-9, rtol=0), field
    assert (result.seeds, result.videos, result.resamples) == (3, 7, 30)


def test_two_level_identical_scores_give_a_degenerate_zero_interval() -> None:
    a = np.random.default_rng(0).random((2, 20, 10))
    result = two_level_bootstrap(a, a.copy(), resamples=200, seed=0)
    assert np.all(result.delta == 0) and np.all(result.low == 0) and np.all(result.high == 0)
    assert not result.resolved.any()


def test_seed_spread_widens_what_the_videos_alone_would_resolve() -> None:
    """Every video gains the same amount within a seed (no video-level doubt), but the
    gain changes sign between seeds: only the seed level can show it is unresolved."""
    a = np.full((3, 50, 10), 0.5)
    b = a + np.array([0.03, -0.03, 0.005])[:, None, None]
    one_seed = two_level_bootstrap(a[:1], b[:1], resamples=500, seed=0)
    assert one_seed.resolved.all()  # +3 points on every video of the one seed
    three = two_level_bootstrap(a, b, resamples=500, seed=0)
    assert np.allclose(three.delta, 100 * 0.005 / 3)
    assert not three.resolved.any() and (three.low < 0).all() and (three.high > 0).all()


def test_the_video_draw_is_shared_by_the_seeds() -> None:
    """Each video keeps its own effect across seeds (the seeds are scored on the same
    videos): the interval must not shrink as seeds are added that repeat the same
    per-video differences."""
    rng = np.random.default_rng(4)
    per_video = rng.normal(0.0, 0.2, (60, 10))  # a video's own effect, same on every seed
    a = np.full((1, 60, 10), 0.5)
    one = two_level_bootstrap(a, a + per_video, resamples=2000, seed=1)
    four = two_level_bootstrap(
        np.repeat(a, 4, 0), np.repeat(a + per_video[None], 4, 0), resamples=2000, seed=1
    )
    assert np.allclose(four.delta, one.delta)
    width_one, width_four = one.high - one.low, four.high - four.low
    assert np.allclose(width_four, width_one, rtol=0.15)  # drawn anew per seed: about half
