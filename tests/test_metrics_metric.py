"""``AVVPMetrics``: batching, deduplication by index, diagnostics, protocol description."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from avvp_lit.classes import CLASSES, PREDICTION_KEYS
from avvp_lit.engine.predictions import PredictionCollector
from avvp_lit.metrics import METRIC_NAMES, AVVPMetrics, evaluate, format_protocol, protocol_dict
from avvp_lit.metrics.avvp import first_rows_by_index
from tests.helpers.metric_cases import make_batch
from tests.helpers.reference_metrics import (
    ref_binarize,
    ref_dataset_scores,
    ref_per_video_scores,
    ref_video_counts,
)

T, K = 10, 25


def class_major(gt: torch.Tensor) -> list:
    """A batch's (B, T, K) labels as per-video (K, T) nested lists."""
    return gt.transpose(1, 2).tolist()


def reference_video_scores(
    batch: dict[str, torch.Tensor], gating: str, video_thr=None, segment_thr=None
) -> list[list[float]]:
    ga, gv = class_major(batch["gt_audio"]), class_major(batch["gt_visual"])
    return ref_per_video_scores(batch, ga, gv, gating, video_thr, segment_thr)


def _rows(batch: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    return {key: value[rows] for key, value in batch.items()}


@pytest.mark.parametrize("gating", ["global", "modality", "mmcse"])
def test_metric_matches_reference_in_shuffled_batches(gating):
    batch = make_batch(150, seed=1)
    metric = AVVPMetrics(gating=gating)
    order = torch.from_numpy(np.random.default_rng(2).permutation(150))
    for chunk in order.split(17):
        metric.update(**_rows(batch, chunk))
    got = metric.compute()
    want = ref_dataset_scores(reference_video_scores(batch, gating))
    assert list(got) == list(METRIC_NAMES)
    for name, value in zip(METRIC_NAMES, want, strict=True):
        assert got[name] == pytest.approx(value, abs=1e-9), name
    assert all(isinstance(v, float) for v in got.values())


def test_repeated_videos_count_once_and_order_does_not_matter():
    batch = make_batch(41, seed=3)
    single = AVVPMetrics()
    single.update(**batch)
    expected = single.compute()

    repeated = AVVPMetrics()
    rows = torch.cat([torch.arange(41).flip(0), torch.tensor([0, 7, 7, 40])])
    for chunk in rows.split(9):
        repeated.update(**_rows(batch, chunk))
    assert repeated.compute() == expected  # bit for bit: rows are reduced in index order

    padded = _rows(batch, rows)
    naive = evaluate(
        padded["global_prob"],
        padded["a_prob"],
        padded["v_prob"],
        padded["frame_prob"],
        padded["gt_audio"].transpose(1, 2),
        padded["gt_visual"].transpose(1, 2),
    )
    assert naive != expected  # the repeats would have moved the numbers


def test_reset_forgets_videos():
    metric = AVVPMetrics()
    metric.update(**make_batch(10, seed=4))
    metric.reset()
    batch = make_batch(12, seed=5)
    metric.update(**batch)
    fresh = AVVPMetrics()
    fresh.update(**batch)
    assert metric.compute() == fresh.compute()


def test_class_thresholds_reach_the_metric():
    batch = make_batch(80, seed=6)
    rng = np.random.default_rng(7)
    thresholds = {"audio": (rng.integers(1, 8, size=K) / 8).tolist(), "video": [0.25] * K}
    metric = AVVPMetrics(gating="modality", class_thresholds=thresholds)
    metric.update(**batch)
    got = metric.compute()
    seg = [thresholds["audio"], [0.5] * K]
    per_video = reference_video_scores(batch, "modality", thresholds["video"], seg)
    for name, value in zip(METRIC_NAMES, ref_dataset_scores(per_video), strict=True):
        assert got[name] == pytest.approx(value, abs=1e-9), name
    default = AVVPMetrics(gating="modality")
    default.update(**batch)
    assert default.compute() != got


def test_diagnostics_per_video_and_per_class():
    batch = make_batch(60, seed=8)
    metric = AVVPMetrics(gating="mmcse")
    rows = torch.cat([torch.arange(30, 60), torch.arange(0, 30), torch.tensor([5])])
    metric.update(**_rows(batch, rows))
    diag = metric.compute_diagnostics()
    assert diag.index.tolist() == list(range(60))
    want = 100 * np.array(reference_video_scores(batch, "mmcse"))
    np.testing.assert_allclose(diag.video_scores, want, rtol=0, atol=1e-10)
    pooled = {key: np.zeros((K, 3), dtype=np.int64) for key in diag.class_f1}
    for v in range(60):
        pa, pv = ref_binarize(
            *(batch[n][v].tolist() for n in ("global_prob", "a_prob", "v_prob", "frame_prob")),
            "mmcse",
            [0.5] * K,
            [[0.5] * K] * 2,
        )
        counts = ref_video_counts(
            pa, pv, batch["gt_audio"][v].T.tolist(), batch["gt_visual"][v].T.tolist()
        )
        for key in pooled:
            pooled[key] += np.array(counts[key])
    for key, totals in pooled.items():
        tp, fp, fn = totals.T
        denominator = 2 * tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            want_f1 = np.where(denominator > 0, 200 * tp / denominator, np.nan)
        np.testing.assert_allclose(diag.class_f1[key], want_f1, rtol=0, atol=1e-10, err_msg=key)
    assert diag.classes == CLASSES
    worst = diag.worst_videos("seg_type", k=3)
    column = want[:, METRIC_NAMES.index("seg_type")]
    assert [score for _, score in worst] == pytest.approx(sorted(column)[:3])
    assert column[worst[0][0]] == pytest.approx(worst[0][1])


def test_update_rejects_bad_shapes_and_compute_needs_videos():
    metric = AVVPMetrics()
    with pytest.warns(UserWarning, match="before the ``update``"):
        with pytest.raises(ValueError, match="no videos"):
            metric.compute()
    batch = make_batch(4)
    batch["frame_prob"] = batch["frame_prob"].transpose(1, 2)
    with pytest.raises(ValueError, match=r"frame_prob has shape \(4, 2, 10, 25\)"):
        metric.update(**batch)
    with pytest.raises(ValueError, match="unknown gating"):
        AVVPMetrics(gating="han")


def test_protocol_describes_settings_and_files(tmp_path):
    thresholds = {"visual": [0.3] * K}
    metric = AVVPMetrics(gating="mmcse", video_threshold=0.4, class_thresholds=thresholds)
    files = {"audio": tmp_path / "AVVP_eval_audio.csv"}
    files["audio"].write_bytes(b"filename\tonset\toffset\tevent_labels\n")
    protocol = metric.protocol(split="val", audio_labels="current", annotation_files=files)
    assert protocol["gating"] == "mmcse"
    assert (protocol["gate_audio"], protocol["gate_visual"]) == ("global_prob", "v_prob")
    assert protocol["video_threshold"] == 0.4 and protocol["segment_threshold"] == 0.5
    assert protocol["class_thresholds"] == {"visual": [0.3] * K}
    md5 = hashlib.md5(files["audio"].read_bytes()).hexdigest()
    assert protocol["annotations"] == {"audio": {"file": "AVVP_eval_audio.csv", "md5": md5}}
    line = format_protocol(protocol)
    assert "gating mmcse" in line and md5 in line and "video 0.4" in line
    assert protocol_dict()["gate_audio"] == "global_prob"
    assert protocol_dict(gating="modality")["gate_audio"] == "a_prob"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_metric_on_cuda_equals_cpu():
    batch = make_batch(200, seed=12)
    results = {}
    for device in ("cpu", "cuda"):
        metric = AVVPMetrics(gating="modality").to(device)
        for rows in torch.arange(200).split(33):
            metric.update(**{key: value[rows].to(device) for key, value in batch.items()})
        results[device] = (metric.compute(), metric.compute_diagnostics())
    for name, value in results["cpu"][0].items():  # float64 sums may differ in order only
        assert results["cuda"][0][name] == pytest.approx(value, abs=1e-12), name
    cuda_diag, cpu_diag = results["cuda"][1], results["cpu"][1]
    np.testing.assert_array_equal(cuda_diag.index, cpu_diag.index)
    np.testing.assert_allclose(cuda_diag.video_scores, cpu_diag.video_scores, rtol=0, atol=1e-12)
    for key, value in cpu_diag.class_f1.items():
        np.testing.assert_allclose(cuda_diag.class_f1[key], value, rtol=0, atol=1e-12)


def test_first_rows_by_index_keeps_the_first_row_of_each_video_in_index_order():
    index = torch.tensor([7, 2, 7, 0, 2, 5])
    rows = first_rows_by_index(index)
    assert rows.tolist() == [3, 1, 5, 0]  # videos 0, 2, 5, 7 at their first rows
    assert first_rows_by_index(torch.tensor([], dtype=torch.long)).tolist() == []
    # many ties (a sort that is not stable would pick other rows): against a plain loop
    index = torch.randint(0, 50, (5000,), generator=torch.Generator().manual_seed(1))
    first_seen: dict[int, int] = {}
    for row, video in enumerate(index.tolist()):
        first_seen.setdefault(video, row)
    assert first_rows_by_index(index).tolist() == [first_seen[v] for v in sorted(first_seen)]


def test_prediction_collector_returns_each_video_once_in_index_order():
    collector = PredictionCollector()
    rng = torch.Generator().manual_seed(0)

    def batch(index):
        n = len(index)
        return {
            "global_prob": torch.rand(n, 25, generator=rng),
            "a_prob": torch.rand(n, 25, generator=rng),
            "v_prob": torch.rand(n, 25, generator=rng),
            "frame_prob": torch.rand(n, 10, 2, 25, generator=rng),
        }

    first = batch([3, 1])
    second = batch([0, 3])  # video 3 again, as DistributedSampler padding repeats it
    collector.update(torch.tensor([3, 1]), **first)
    collector.update(torch.tensor([0, 3]), **second)
    out = collector.compute()
    assert out["index"].tolist() == [0, 1, 3]
    for key in PREDICTION_KEYS:
        expected = torch.stack([second[key][0], first[key][1], first[key][0]])
        np.testing.assert_array_equal(out[key], expected.numpy())
