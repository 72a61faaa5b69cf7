"""The vectorised protocol against the loop-per-video reference, on random and edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from avvp_lit.metrics import (
    METRIC_NAMES,
    avvp_counts,
    binarize,
    class_f1,
    dataset_scores,
    evaluate,
    event_counts,
    f_scores,
    match_runs,
    resolve_thresholds,
    run_indicators,
    scores_from_counts,
    segment_counts,
)
from tests.helpers.metric_cases import runs_case
from tests.helpers.reference_metrics import (
    ref_binarize,
    ref_dataset_scores,
    ref_event_counts,
    ref_per_video_scores,
    ref_video_counts,
    ref_video_scores,
)

T, K = 10, 25
KEYS = [f"{level}_{m}" for level in ("seg", "evt") for m in ("a", "v", "av")]


# ----------------------------------------------------------------------- case generators


def _edge_sequences(length: int = T) -> list[list[int]]:
    """Hand-picked shapes: empty, full, runs at both ends, single seconds, many short runs."""
    seqs = [[0] * length, [1] * length]
    for t in range(length):
        single = [0] * length
        single[t] = 1
        seqs.append(single)
        seqs.append([1 - x for x in single])
    seqs += [
        [t % 2 for t in range(length)],
        [1 - t % 2 for t in range(length)],
        [1 if t % 3 == 0 else 0 for t in range(length)],
        [1 if t < 3 or t >= length - 3 else 0 for t in range(length)],
        [1 if t < length // 2 else 0 for t in range(length)],
        [1 if t >= length // 2 else 0 for t in range(length)],
        [1 if 2 <= t < length - 2 else 0 for t in range(length)],
        [1 if t in (0, length - 1) else 0 for t in range(length)],
    ]
    return seqs


def edge_case(rng: np.random.Generator) -> np.ndarray:
    """Every ordered pair of edge sequences, each placed in some (video, class) slot.

    Returns (4, N, 25, T) int: pred audio, pred visual, gt audio, gt visual.
    """
    seqs = np.array(_edge_sequences())
    pairs = np.array(list(itertools.product(range(len(seqs)), repeat=2)))
    videos = -(-len(pairs) // K)
    out = np.zeros((4, videos * K, T), dtype=np.int64)
    for modality in range(2):
        order = rng.permutation(len(pairs))
        out[modality, : len(pairs)] = seqs[pairs[order, 0]]
        out[modality + 2, : len(pairs)] = seqs[pairs[order, 1]]
    return out.reshape(4, videos, K, T)


def bernoulli_case(rng: np.random.Generator, videos: int) -> np.ndarray:
    density = rng.choice([0.05, 0.2, 0.5, 0.8, 0.95], size=(4, videos, 1, 1))
    return (rng.random((4, videos, K, T)) < density).astype(np.int64)


def _reference(case: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    counts = {key: [] for key in KEYS}
    scores = []
    for video in range(case.shape[1]):
        pa, pv, ga, gv = (case[i, video].tolist() for i in range(4))
        for key, rows in ref_video_counts(pa, pv, ga, gv).items():
            counts[key].append(rows)
        scores.append(ref_video_scores(pa, pv, ga, gv))
    return {k: np.array(v) for k, v in counts.items()}, np.array(scores)


def _vectorised(case: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    counts = avvp_counts(*(torch.from_numpy(case[i]) for i in range(4)))
    return counts, scores_from_counts(counts)


def _assert_matches_reference(case: np.ndarray) -> None:
    counts, scores = _vectorised(case)
    ref_counts, ref_scores = _reference(case)
    for i, key in enumerate(KEYS):
        level, modality = divmod(i, 3)
        got = counts[:, level, modality].transpose(1, 2).numpy()  # (N, 25, 3)
        np.testing.assert_array_equal(got, ref_counts[key], err_msg=key)
    np.testing.assert_allclose(scores.numpy(), ref_scores, rtol=0, atol=1e-12)
    got_dataset = dataset_scores(scores)
    want_dataset = ref_dataset_scores(ref_scores.tolist())
    for name, want in zip(METRIC_NAMES, want_dataset, strict=True):
        assert got_dataset[name] == pytest.approx(want, abs=1e-9), name


# ----------------------------------------------------------------------- comparisons


def test_edge_pairs_match_reference():
    case = edge_case(np.random.default_rng(1))
    shapes = len(_edge_sequences())
    assert shapes == 30 and case.shape[1] * K >= shapes**2  # every ordered pair, per modality
    _assert_matches_reference(case)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_bernoulli_videos_match_reference(seed):
    _assert_matches_reference(bernoulli_case(np.random.default_rng(seed), 400))


@pytest.mark.parametrize("seed", [0, 1])
def test_random_interval_videos_match_reference(seed):
    _assert_matches_reference(runs_case(np.random.default_rng(10 + seed), 500))


def test_special_videos_match_reference():
    """All-empty, all-full, and one video per mixed extreme."""
    empty = np.zeros((4, 1, K, T), dtype=np.int64)
    full = np.ones((4, 1, K, T), dtype=np.int64)
    mixed = np.concatenate([full[:2], empty[2:]])  # everything predicted, nothing there
    missed = np.concatenate([empty[:2], full[2:]])
    case = np.concatenate([empty, full, mixed, missed], axis=1)
    counts, scores = _vectorised(case)
    assert scores[0].tolist() == [1.0] * 10
    assert scores[1].tolist() == [1.0] * 10
    assert scores[2].tolist() == [0.0] * 10
    assert scores[3].tolist() == [0.0] * 10
    _assert_matches_reference(case)


@pytest.mark.parametrize("length", [1, 2, 6])
def test_every_sequence_pair_of_short_length(length):
    """Exhaustive over all 2^L x 2^L pred/gt pairs: the table path and the direct path."""
    codes = np.arange(2**length)
    seqs = (codes[:, None] >> np.arange(length)) & 1
    pred = np.repeat(seqs, len(seqs), axis=0)
    gt = np.tile(seqs, (len(seqs), 1))
    want = np.array(
        [ref_event_counts(p, g) for p, g in zip(pred.tolist(), gt.tolist(), strict=True)]
    )
    table = event_counts(torch.from_numpy(pred)[:, None], torch.from_numpy(gt)[:, None])
    np.testing.assert_array_equal(table[:, :, 0].numpy(), want)
    direct = match_runs(
        run_indicators(torch.from_numpy(pred)), run_indicators(torch.from_numpy(gt))
    )
    np.testing.assert_array_equal(direct.numpy(), want)


def test_long_sequences_use_direct_paths_and_match_reference():
    rng = np.random.default_rng(5)
    length = 16
    pred = (rng.random((3000, length)) < rng.random((3000, 1))).astype(np.int64)
    gt = (rng.random((3000, length)) < rng.random((3000, 1))).astype(np.int64)
    want = np.array(
        [ref_event_counts(p, g) for p, g in zip(pred.tolist(), gt.tolist(), strict=True)]
    )
    got = event_counts(torch.from_numpy(pred)[:, None], torch.from_numpy(gt)[:, None])
    np.testing.assert_array_equal(got[:, :, 0].numpy(), want)

    videos = (rng.random((4, 40, K, length)) < rng.random((4, 40, 1, 1))).astype(np.int64)
    counts = avvp_counts(*(torch.from_numpy(videos[i]) for i in range(4)))
    for video in range(40):
        want_counts = ref_video_counts(*(videos[i, video].tolist() for i in range(4)))
        for i, key in enumerate(KEYS):
            level, modality = divmod(i, 3)
            got_counts = counts[video, level, modality].T.numpy()
            np.testing.assert_array_equal(got_counts, want_counts[key], err_msg=key)


def test_run_indicators_mark_maximal_runs():
    x = torch.tensor([[1, 1, 0, 1, 0, 0, 0, 0, 1, 1]])
    runs = run_indicators(x)[0]
    start, end = torch.triu_indices(11, 11, offset=1)
    found = sorted((int(s), int(e)) for s, e in zip(start[runs], end[runs], strict=True))
    assert found == [(0, 2), (3, 4), (8, 10)]


def test_segment_counts_by_hand():
    pred = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0, 0, 1]])
    gt = torch.tensor([[0, 0, 1, 1, 1, 1, 0, 0, 0, 1]])
    assert segment_counts(pred[:, None], gt[:, None])[0, :, 0].tolist() == [3, 2, 2]


def test_f_scores_qualifying_classes_and_empty_video():
    counts = torch.zeros(3, 3, K, dtype=torch.int32)
    counts[1, :, 0] = torch.tensor([2, 2, 2])  # F = 0.5
    counts[1, :, 4] = torch.tensor([0, 3, 0])  # predicted, absent: F = 0
    counts[2, :, 7] = torch.tensor([5, 0, 0])  # F = 1
    assert f_scores(counts).tolist() == [1.0, 0.25, 1.0]


def test_two_videos_worked_by_hand():
    """The two-video example of test_metrics_reference through the public functions."""
    pa, pv, ga, gv = (np.zeros((2, K, T), dtype=np.int64) for _ in range(4))
    pa[0, 0, 0:4], ga[0, 0, 2:6] = 1, 1
    pa[1, 0, :], ga[1, 0, :] = 1, 1
    pv[1, 3, 0:2], pv[1, 3, 5], gv[1, 3, 0:3] = 1, 1, 1
    scores = dataset_scores(
        scores_from_counts(avvp_counts(*map(torch.from_numpy, (pa, pv, ga, gv))))
    )
    want = {
        "seg_a": 75.0,
        "seg_v": 250 / 3,
        "seg_av": 100.0,
        "seg_event": 200 / 3,
        "evt_a": 50.0,
        "evt_v": 250 / 3,
        "evt_av": 100.0,
        "evt_event": 125 / 3,
    }
    want["seg_type"] = (75.0 + 250 / 3 + 100.0) / 3
    want["evt_type"] = (50.0 + 250 / 3 + 100.0) / 3
    assert list(scores) == list(METRIC_NAMES)
    for name, value in want.items():
        assert scores[name] == pytest.approx(value, abs=1e-12), name


# ----------------------------------------------------------------------- binarisation


def _random_probs(rng: np.random.Generator, videos: int) -> dict[str, np.ndarray]:
    """Probabilities on a 1/8 grid so that ties with the thresholds occur often."""

    def grid(*shape: int) -> np.ndarray:
        return (rng.integers(0, 9, size=shape) / 8).astype(np.float32)

    return {
        "global_prob": grid(videos, K),
        "a_prob": grid(videos, K),
        "v_prob": grid(videos, K),
        "frame_prob": grid(videos, T, 2, K),
    }


@pytest.mark.parametrize("gating", ["global", "modality", "mmcse"])
@pytest.mark.parametrize("per_class", [False, True])
def test_binarize_matches_reference(gating, per_class):
    rng = np.random.default_rng(3)
    probs = _random_probs(rng, 60)
    if per_class:
        thresholds = {
            "video": (rng.integers(1, 8, size=K) / 8).tolist(),
            "audio": (rng.integers(1, 8, size=K) / 8).tolist(),
            "visual": rng.random(K).tolist(),
        }
    else:
        thresholds = None
    video_thr, segment_thr = resolve_thresholds(class_thresholds=thresholds)
    pred_a, pred_v = binarize(
        *probs.values(), gating=gating, video_threshold=video_thr, segment_threshold=segment_thr
    )
    assert pred_a.shape == (60, K, T) and pred_a.dtype == torch.bool
    for video in range(60):
        want_a, want_v = ref_binarize(
            *(probs[name][video].tolist() for name in probs),
            gating,
            video_thr.tolist(),
            segment_thr.tolist(),
        )
        assert pred_a[video].int().tolist() == want_a
        assert pred_v[video].int().tolist() == want_v


def test_gatings_differ_as_documented():
    probs = {
        "global_prob": np.full((1, K), 0.9, dtype=np.float32),
        "a_prob": np.full((1, K), 0.1, dtype=np.float32),
        "v_prob": np.full((1, K), 0.1, dtype=np.float32),
        "frame_prob": np.full((1, T, 2, K), 0.5, dtype=np.float32),
    }
    totals = {
        gating: tuple(int(x.sum()) for x in binarize(*probs.values(), gating=gating))
        for gating in ("global", "modality", "mmcse")
    }
    assert totals == {"global": (250, 250), "modality": (0, 0), "mmcse": (250, 0)}


def test_threshold_values_are_used():
    probs = _random_probs(np.random.default_rng(4), 20)
    strict = binarize(*probs.values(), video_threshold=0.75, segment_threshold=0.875)
    loose = binarize(*probs.values())
    assert strict[0].sum() < loose[0].sum()
    assert not (strict[0] & ~loose[0]).any()


def test_resolve_thresholds_overrides_and_errors():
    video, segment = resolve_thresholds(
        video_threshold=0.4, segment_threshold=0.6, class_thresholds={"visual": [0.1] * K}
    )
    assert video.tolist() == [0.4] * K
    assert segment[0].tolist() == [0.6] * K and segment[1].tolist() == [0.1] * K
    with pytest.raises(ValueError, match="unknown key 'speech'"):
        resolve_thresholds(class_thresholds={"speech": [0.5] * K})
    with pytest.raises(ValueError, match="shape"):
        resolve_thresholds(class_thresholds={"audio": [0.5] * 3})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        resolve_thresholds(video_threshold=1.5)
    with pytest.raises(ValueError, match="unknown gating"):
        binarize(*_random_probs(np.random.default_rng(0), 1).values(), gating="han")


def test_evaluate_equals_reference_end_to_end():
    rng = np.random.default_rng(8)
    probs = _random_probs(rng, 200)
    gt = runs_case(rng, 200)[2:]
    got = evaluate(*probs.values(), gt[0], gt[1], gating="mmcse")
    per_video = ref_per_video_scores(probs, gt[0].tolist(), gt[1].tolist(), "mmcse")
    for name, want in zip(METRIC_NAMES, ref_dataset_scores(per_video), strict=True):
        assert got[name] == pytest.approx(want, abs=1e-9), name


def test_class_f1_pools_counts_over_videos():
    case = runs_case(np.random.default_rng(6), 300)
    counts, _ = _vectorised(case)
    ref_counts, _ = _reference(case)
    got = class_f1(counts)
    for key in KEYS:
        tp, fp, fn = ref_counts[key].sum(0).T
        denominator = 2 * tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            want = np.where(denominator > 0, 2 * tp / denominator, np.nan)
        np.testing.assert_allclose(got[key], want, rtol=0, atol=1e-12, err_msg=key)
    empty = class_f1(torch.zeros(1, 2, 3, 3, K, dtype=torch.int32))
    assert np.isnan(empty["seg_a"]).all()
