"""The loop-per-video reference of the AVVP protocol (``tests/helpers/reference_metrics``)
pinned to hand-computed numbers; the other metric tests compare the vectorised
implementation with it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.reference_metrics import (
    ref_binarize,
    ref_dataset_scores,
    ref_event_counts,
    ref_runs,
    ref_video_scores,
)


def _seq(*runs: tuple[int, int], length: int = 10) -> list[int]:
    out = [0] * length
    for start, end in runs:
        for t in range(start, end):
            out[t] = 1
    return out


def test_runs_are_maximal_half_open_intervals():
    assert ref_runs([1, 1, 0, 1, 0, 0, 0, 0, 1, 1]) == [(0, 2), (3, 4), (8, 10)]
    assert ref_runs([0] * 10) == []
    assert ref_runs([1] * 10) == [(0, 10)]


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        (_seq((0, 3)), _seq((1, 4)), (1, 0, 0)),  # IoU 2/4 = 0.5 exactly: a match
        (_seq((0, 3)), _seq((1, 5)), (0, 1, 1)),  # IoU 2/5
        (_seq((0, 2), (5, 6)), _seq((0, 3)), (1, 1, 0)),
        (_seq((0, 10)), _seq((0, 4), (6, 10)), (0, 1, 2)),
        (_seq(), _seq((3, 4)), (0, 0, 1)),
        (_seq((9, 10)), _seq(), (0, 1, 0)),
    ],
)
def test_reference_event_counts_by_hand(pred, gt, expected):
    assert ref_event_counts(pred, gt) == expected


def test_reference_scores_two_videos_by_hand():
    """Two videos worked out on paper (see the comments) give the ten numbers."""
    zeros = [[0] * 10 for _ in range(25)]

    def with_rows(rows: dict[int, list[int]]) -> list[list[int]]:
        out = [list(r) for r in zeros]
        for c, row in rows.items():
            out[c] = row
        return out

    # video 0: audio Speech pred [0,4) vs gt [2,6): seg 2/2/2 -> 0.5, event IoU 1/3 -> 0.
    # No visual anything: V and AV score 1.0.
    v0 = ref_video_scores(with_rows({0: _seq((0, 4))}), zeros, with_rows({0: _seq((2, 6))}), zeros)
    assert v0 == pytest.approx([0.5, 1.0, 1.0, 2.5 / 3, 0.5, 0.0, 1.0, 1.0, 2 / 3, 0.0])
    # video 1: audio Speech everywhere, right; visual Dog pred [0,2)+[5,6) vs gt [0,3):
    # seg 2/1/1 -> 2/3; events: [0,2) matches (IoU 2/3), [5,6) is an FP -> 2/3.
    # AV empty on both sides -> 1.0. Event@AV: Speech 1, Dog 2/3 -> 5/6 at both levels.
    v1 = ref_video_scores(
        with_rows({0: [1] * 10}),
        with_rows({3: _seq((0, 2), (5, 6))}),
        with_rows({0: [1] * 10}),
        with_rows({3: _seq((0, 3))}),
    )
    assert v1 == pytest.approx([1, 2 / 3, 1, 8 / 9, 5 / 6, 1, 2 / 3, 1, 8 / 9, 5 / 6])
    expected = [75.0, 250 / 3, 100.0, None, 200 / 3, 50.0, 250 / 3, 100.0, None, 125 / 3]
    got = ref_dataset_scores([v0, v1])
    for i, value in enumerate(expected):
        if value is not None:
            assert got[i] == pytest.approx(value)


def test_reference_binarize_gating():
    frame = np.full((10, 2, 25), 0.5).tolist()  # ties count as positive (>=)
    glob, a, v = [0.5] * 25, [0.4] * 25, [0.6] * 25
    thr, seg = [0.5] * 25, [[0.5] * 25, [0.5] * 25]
    pa, pv = ref_binarize(glob, a, v, frame, "global", thr, seg)
    assert sum(map(sum, pa)) == 250 and sum(map(sum, pv)) == 250
    pa, pv = ref_binarize(glob, a, v, frame, "modality", thr, seg)
    assert sum(map(sum, pa)) == 0 and sum(map(sum, pv)) == 250
    pa, pv = ref_binarize(glob, [0.9] * 25, [0.1] * 25, frame, "mmcse", thr, seg)
    assert sum(map(sum, pa)) == 250 and sum(map(sum, pv)) == 0
