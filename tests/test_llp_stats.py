"""The LLP label statistics: computed from the real files, embedded in the package."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

from avvp_lit.classes import CLASS_INDEX, NUM_CLASSES
from avvp_lit.cli.data import main
from avvp_lit.data.annotations import load_split
from avvp_lit.data.llp_stats import (
    compute_llp_statistics,
    event_statistics,
    load_embedded_statistics,
    parse_pattern,
    pattern_string,
    run_bounds,
)

RESOURCE = resources.files("avvp_lit") / "resources" / "llp_stats.json"


def test_embedded_table_matches_the_real_files(llp_dir):
    computed = json.loads(json.dumps(compute_llp_statistics(llp_dir)))
    assert computed == load_embedded_statistics()


def test_cli_writes_the_embedded_file_byte_for_byte(llp_dir, tmp_path):
    out = tmp_path / "stats.json"
    assert main(["stats", str(llp_dir), str(out)]) == 0
    assert out.read_bytes() == RESOURCE.read_bytes()


def test_known_llp_numbers(llp_dir):
    """Figures quoted in shared/llp/README.md."""
    stats = load_embedded_statistics()
    train = stats["videos"]["train"]
    assert train["classes_per_video"] == [0, 4032, 5879, 89]
    assert train["class_counts"][CLASS_INDEX["Speech"]] == 4988
    test = load_split(llp_dir, "test")
    assert event_statistics(test.gt_audio, test.gt_visual)["videos_without"]["visual"] == 121


def test_embedded_table_is_small_and_consistent():
    assert RESOURCE.is_file() and len(RESOURCE.read_bytes()) < 32_000
    stats = load_embedded_statistics()
    for group in stats["videos"].values():
        cooc = np.asarray(group["cooccurrence"])
        assert cooc.shape == (NUM_CLASSES, NUM_CLASSES) and (cooc == cooc.T).all()
        assert np.diag(cooc).tolist() == group["class_counts"]
        assert sum(group["classes_per_video"]) == group["videos"]
        assert sum(count for count, _ in group["label_sets"]) == group["videos"]
    events = stats["events"]
    types = np.asarray(events["modality_counts"])
    with_audio, with_visual = types[:, 0] + types[:, 2], types[:, 1] + types[:, 2]
    assert (np.asarray(events["full_video_counts"]["audio"]) <= with_audio).all()
    assert (np.asarray(events["full_video_counts"]["visual"]) <= with_visual).all()
    assert (np.asarray(events["av_identical"]) <= types[:, 2]).all()
    for modality, events_total in (("audio", with_audio.sum()), ("visual", with_visual.sum())):
        runs = np.asarray(events["runs_per_event"][modality])
        assert runs.sum() == events_total
        assert sum(events["onset_histogram"][modality]) == (runs * np.arange(len(runs))).sum()
        full = sum(events["full_video_counts"][modality])
        assert sum(c for c, _ in events["partial_patterns"][modality]) == events_total - full


def test_run_bounds_and_patterns():
    timelines = np.array([parse_pattern("0110011111"), parse_pattern("1111111111")])
    rows, onsets, durations = run_bounds(timelines)
    assert rows.tolist() == [0, 0, 1]
    assert onsets.tolist() == [1, 5, 0]
    assert durations.tolist() == [2, 5, 10]
    assert pattern_string(timelines[0]) == "0110011111"
