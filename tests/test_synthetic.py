"""The built-in synthetic LLP: layout, determinism, statistics, atomic writes and the CLI.

Tolerances. Statistics are checked on labels sampled at the ``llp`` size (labels only,
no features: milliseconds), 10,000 train and 1,849 val+test videos. A frequency p
measured on n videos has standard deviation sqrt(p(1 - p)/n) (<= 0.005 for train, 0.012
for val+test); every comparison allows 4 standard deviations plus a small margin for
the approximations the generator makes knowingly (see each test).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avvp_lit.classes import NUM_CLASSES, NUM_SEGMENTS
from avvp_lit.cli.synth import main
from avvp_lit.data import synthetic
from avvp_lit.data.annotations import AUDIO_LABEL_FILES, FULL_FILE, SPLIT_FILES, load_split
from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.data.llp_stats import event_statistics, load_embedded_statistics, video_statistics
from avvp_lit.data.synthetic import (
    SIZES,
    SyntheticKnobs,
    feature_space,
    generate,
    pseudo_labels,
    render,
    sample_labels,
)

FILENAME = re.compile(r"^[A-Za-z0-9_-]{11}_\d+(\.\d)?_\d+(\.\d)?$")


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny datasets of both feature sets, generated once per session."""
    base = tmp_path_factory.mktemp("synthetic")
    return {
        name: generate(base / name, features=name, size="tiny", seed=0, progress=False)
        for name in FEATURE_SETS
    }


@pytest.fixture(scope="session")
def llp_labels() -> dict[str, synthetic.SplitLabels]:
    return sample_labels(SIZES["llp"], seed=0)


@pytest.fixture(scope="session")
def stats() -> dict:
    return load_embedded_statistics()


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_files(tiny, tmp_path):
    again = generate(tmp_path / "again", features="valor", size="tiny", seed=0, progress=False)
    first, second = _files(tiny["valor"]), _files(again)
    assert first.keys() == second.keys()
    assert all(first[name] == second[name] for name in first)


def test_other_seed_gives_other_data(tiny, tmp_path):
    other = _files(generate(tmp_path / "o", features="valor", size="tiny", seed=1, progress=False))
    first = _files(tiny["valor"])
    for name in (SPLIT_FILES["train"], "AVVP_eval_visual.csv", ".complete"):
        assert first[name] != other[name]
    features = FEATURE_SETS["valor"]["audio"].folder
    assert not set(first) & {n for n in other if n.startswith(features)}


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("feature_set", sorted(FEATURE_SETS))
def test_every_file_loads_and_every_feature_passes_its_declaration(tiny, feature_set):
    root = tiny[feature_set]
    modalities = FEATURE_SETS[feature_set].modalities
    names = []
    for split, expected in SIZES["tiny"].items():
        annotations = load_split(root, split)
        assert len(annotations) == expected
        assert (annotations.weak.sum(1) >= 1).all()
        if split != "train":
            union = (annotations.gt_audio | annotations.gt_visual).any(1)
            np.testing.assert_array_equal(union, annotations.weak > 0)
        names += annotations.filenames
        for video in annotations.feature_ids:
            for modality in modalities:
                array = np.load(root / modality.folder / f"{video}.npy")
                modality.check(array, video)
                if modality.is_label:
                    assert np.issubdtype(array.dtype, np.integer)
                else:
                    assert array.dtype == np.float32 and (array >= 0).all()
    assert all(FILENAME.match(name) for name in names)
    assert len({name[:11] for name in names}) == len(names)
    full = (root / FULL_FILE).read_text().splitlines()
    assert [line.split("\t")[0] for line in full[1:]] == names
    audio = {(root / name).read_bytes() for name in AUDIO_LABEL_FILES.values()}
    assert len(audio) == 1
    marker = json.loads((root / synthetic.COMPLETE_MARKER).read_text())
    assert marker["features"] == feature_set and marker["seed"] == 0
    assert marker["version"] == synthetic.GENERATOR_VERSION


def test_dense_rows_are_runs_of_the_truth(tiny):
    root = tiny["valor"]
    labels = sample_labels(SIZES["tiny"], seed=0)
    for split in ("val", "test"):
        annotations = load_split(root, split)
        np.testing.assert_array_equal(annotations.gt_audio, labels[split].audio)
        np.testing.assert_array_equal(annotations.gt_visual, labels[split].visual)
    lines = (root / "AVVP_eval_visual.csv").read_text().splitlines()[1:]
    intervals: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for name, onset, offset, label in (line.split("\t") for line in lines):
        intervals.setdefault((name, label), []).append((int(onset), int(offset)))
    for spans in intervals.values():
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start > end  # separate runs: neither overlapping nor touching


def test_pseudo_labels_stay_within_weak_labels(tiny):
    root = tiny["valor"]
    for split in SIZES["tiny"]:
        annotations = load_split(root, split)
        for video, weak in zip(annotations.feature_ids, annotations.weak, strict=True):
            for key in ("pl_audio", "pl_visual"):
                folder = FEATURE_SETS["valor"][key].folder
                labels = np.load(root / folder / f"{video}.npy")
                assert not labels[:, weak == 0].any()


def test_pseudo_label_error_rates():
    rng = np.random.default_rng(0)
    truth = rng.random((2000, NUM_SEGMENTS, NUM_CLASSES)) < 0.3
    weak = truth.any(1) | (rng.random((2000, NUM_CLASSES)) < 0.1)
    noisy = pseudo_labels(rng, truth, weak, miss=0.2, false_alarm=0.1).astype(bool)
    inside = np.broadcast_to(weak[:, None], truth.shape)
    assert not noisy[~inside].any()
    assert abs((truth & ~noisy).sum() / truth.sum() - 0.2) < 0.01
    assert abs((noisy & ~truth & inside).sum() / (~truth & inside).sum() - 0.1) < 0.01


def test_feature_time_structure():
    """ResNet frames vary inside a second; CLAP steps map to seconds; CLIP is unit-norm."""
    knobs = SyntheticKnobs()
    labels = np.zeros((2, NUM_SEGMENTS, NUM_CLASSES), dtype=bool)
    labels[:, 3:6, 0] = True
    rng = np.random.default_rng(0)
    frames = render(feature_space(FEATURE_SETS["han"]["visual"], 0, 0.3), labels, rng, knobs)
    assert frames.shape == (2, 80, 2048)
    assert not np.allclose(frames[0, 24], frames[0, 25])
    clap = feature_space(FEATURE_SETS["valor"]["audio"], 0, 0.3)
    assert clap.step_second[0] == 0 and clap.step_second[-1] == NUM_SEGMENTS - 1
    assert set(np.bincount(clap.step_second).tolist()) <= {6, 7}
    clip = render(feature_space(FEATURE_SETS["valor"]["visual"], 0, 0.3), labels, rng, knobs)
    np.testing.assert_allclose(np.linalg.norm(clip, axis=-1), 1.0, rtol=1e-5)


def _probe_auc(knobs: SyntheticKnobs) -> float:
    """Mean per-class AUC of a ridge probe from one second's VGGish-shaped feature to its
    labels (trained on oracle per-second labels): how much label information survives."""
    space = feature_space(FEATURE_SETS["han"]["audio"], 0, knobs.prototype_similarity)
    rng = np.random.default_rng(1)
    labels = rng.random((300, NUM_SEGMENTS, NUM_CLASSES)) < 0.08
    x = render(space, labels, rng, knobs).reshape(-1, space.decoder.shape[1])
    x = np.c_[x, np.ones(len(x))]
    y = labels.reshape(-1, NUM_CLASSES)
    train, test = slice(0, 2000), slice(2000, None)
    weights = np.linalg.solve(x[train].T @ x[train] + np.eye(x.shape[1]), x[train].T @ y[train])
    scores, truth = x[test] @ weights, y[test]
    aucs = []
    for c in range(NUM_CLASSES):
        ranks = np.argsort(np.argsort(scores[:, c])) + 1
        pos = truth[:, c].sum()
        aucs.append((ranks[truth[:, c]].sum() - pos * (pos + 1) / 2) / (pos * (len(ranks) - pos)))
    return float(np.mean(aucs))


def test_features_encode_the_labels_and_the_knobs_make_it_harder():
    default = _probe_auc(SyntheticKnobs())
    assert default > 0.88
    assert _probe_auc(SyntheticKnobs(noise=4.0)) < default - 0.08
    assert _probe_auc(SyntheticKnobs(prototype_similarity=0.8)) < default - 0.04
    assert _probe_auc(SyntheticKnobs(video_variation=2.0)) < default - 0.04


# --------------------------------------------------------------------------- statistics


def _share(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return counts / counts.sum(-1, keepdims=True)


def _tolerance(p: np.ndarray, n: int, margin: float = 0.003) -> np.ndarray:
    return 4 * np.sqrt(p * (1 - p) / n) + margin


@pytest.mark.parametrize("group", ["train", "eval"])
def test_video_level_statistics_match(llp_labels, stats, group):
    """Label sets come from the real set distribution: sampling noise only."""
    weak = (
        llp_labels["train"].weak
        if group == "train"
        else np.concatenate([llp_labels["val"].weak, llp_labels["test"].weak])
    )
    got, want = video_statistics(weak), stats["videos"][group]
    n = got["videos"]
    k = len(want["classes_per_video"])
    per_video = _share(got["classes_per_video"] + [0] * (k - len(got["classes_per_video"])))
    expected = _share(want["classes_per_video"])
    assert (np.abs(per_video - expected) <= _tolerance(expected, n)).all()
    frequency = np.asarray(want["class_counts"]) / want["videos"]
    measured = np.asarray(got["class_counts"]) / n
    assert (np.abs(measured - frequency) <= _tolerance(frequency, n)).all()
    cooc = np.asarray(want["cooccurrence"]) / want["videos"]
    measured = np.asarray(got["cooccurrence"]) / n
    assert (np.abs(measured - cooc) <= _tolerance(cooc, n)).all()


def test_event_statistics_match(llp_labels, stats):
    """Modality shares, full-video shares, runs, onsets and durations of val+test events.

    Per-class shares are checked where the class has >= 100 expected events. The visual
    timeline of an audio-visual event is sometimes copied from its audio (to match how
    often they coincide), which shifts visual onsets and durations slightly (total
    variation 0.02 at infinite size): the visual histograms get 0.03 more tolerance.
    """
    audio = np.concatenate([llp_labels["val"].audio, llp_labels["test"].audio])
    visual = np.concatenate([llp_labels["val"].visual, llp_labels["test"].visual])
    got, want = event_statistics(audio, visual), stats["events"]
    real_types = np.asarray(want["modality_counts"], dtype=np.float64)
    types = np.asarray(got["modality_counts"], dtype=np.float64)
    n_class = types.sum(1)
    p = _share(real_types)
    enough = n_class >= 100
    assert enough.sum() >= 8
    assert (np.abs(_share(types) - p)[enough] <= _tolerance(p, n_class[:, None])[enough]).all()
    pooled = _share(real_types.sum(0))
    assert (np.abs(_share(types.sum(0)) - pooled) <= _tolerance(pooled, n_class.sum())).all()
    for m, column in (("audio", 0), ("visual", 1)):
        events = types[:, column] + types[:, 2]
        real_events = real_types[:, column] + real_types[:, 2]
        full = np.asarray(got["full_video_counts"][m]) / np.maximum(events, 1)
        real_full = np.asarray(want["full_video_counts"][m]) / np.maximum(real_events, 1)
        ok = events >= 100
        assert (np.abs(full - real_full)[ok] <= _tolerance(real_full, events)[ok]).all()
        slack = 0.04 if m == "audio" else 0.07
        for key in ("onset_histogram", "duration_histogram", "runs_per_event"):
            size = max(len(got[key][m]), len(want[key][m]))
            a = _share(np.pad(got[key][m], (0, size - len(got[key][m]))))
            b = _share(np.pad(want[key][m], (0, size - len(want[key][m]))))
            assert 0.5 * np.abs(a - b).sum() < slack, (key, m)
    identical = sum(got["av_identical"]) / types[:, 2].sum()
    real_identical = sum(want["av_identical"]) / real_types[:, 2].sum()
    assert abs(identical - real_identical) < 0.04


def test_per_second_structure_matters(llp_labels):
    """Not every event covers the whole video: tiling the weak labels over the 10 s is
    far from the truth, and many videos have several events at different times."""
    audio, visual = llp_labels["test"].audio, llp_labels["test"].visual
    for truth in (audio, visual):
        present = truth.any(1)
        assert 0.2 < (present & ~truth.all(1)).sum() / present.sum() < 0.8
    assert (~visual.any((1, 2))).mean() > 0.05  # videos without any visual event


# --------------------------------------------------------------------------- writing


def test_crash_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_save = synthetic.save_npy

    def failing_save(path, array):
        calls["n"] += 1
        if calls["n"] > 50:
            raise OSError("disk full (simulated)")
        real_save(path, array)

    monkeypatch.setattr(synthetic, "save_npy", failing_save)
    out = tmp_path / "data"
    with pytest.raises(OSError, match="simulated"):
        generate(out, features="valor", size="tiny", progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "data"
    generate(out, features="valor", size="tiny", seed=0, progress=False)
    with pytest.raises(FileExistsError):
        generate(out, features="valor", size="tiny", seed=1, progress=False)
    generate(out, features="valor", size="tiny", seed=1, progress=False, overwrite=True)
    assert json.loads((out / ".complete").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_knobs_accept_mappings_and_reject_nonsense():
    assert SyntheticKnobs.from_value({"noise": 2}) == SyntheticKnobs(noise=2.0)
    assert SyntheticKnobs.from_value(None) == SyntheticKnobs()
    with pytest.raises(ValueError, match="unknown"):
        SyntheticKnobs.from_value({"loudness": 1})
    with pytest.raises(ValueError):
        SyntheticKnobs(pl_miss_rate=1.5)
    with pytest.raises(ValueError):
        SyntheticKnobs(prototype_similarity=1.0)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    args = [str(out), "--features", "han", "--size", "tiny", "--seed", "3", "--noise", "2.5"]
    assert main([*args, "--pl-miss-rate", "0.3"]) == 0
    marker = json.loads((out / ".complete").read_text())
    assert marker["seed"] == 3 and marker["features"] == "han" and marker["size"] == "tiny"
    assert marker["knobs"]["noise"] == 2.5 and marker["knobs"]["pl_miss_rate"] == 0.3
    summary = capsys.readouterr().out
    assert "train 64, val 24, test 24 videos" in summary and str(out) in summary
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--quiet"]) == 0


def test_console_entry_point(tmp_path):
    out = tmp_path / "entry"
    command = [sys.executable, "-m", "avvp_lit.cli.synth", str(out), "--size", "tiny"]
    result = subprocess.run([*command, "--quiet"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (out / ".complete").is_file()
