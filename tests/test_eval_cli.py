"""``avvp-eval`` on a tiny hand-written annotation folder: scores, output, and every error."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avvp_lit.classes import CLASS_INDEX
from avvp_lit.cli.eval import main
from avvp_lit.metrics import METRIC_NAMES
from tests.helpers.reference_metrics import ref_dataset_scores, ref_per_video_scores

T, K = 10, 25
VIDEOS = ["-abcDEF_123_30_40", "vid_0000001_0_10", "Zz9Zz9Zz9Zz_101.8_111.8", "q" * 11 + "_5_15"]
# (video, onset, offset, class) rows; one row names a video outside the split (ignored).
AUDIO_ROWS = [
    (0, 0, 4, "Speech"),
    (0, 6, 10, "Dog"),
    (1, 2, 3, "Car"),
    (2, 0, 10, "Speech"),
    (3, 3, 7, "Cello"),
    (3, 5, 9, "Cello"),  # overlaps the row above: they merge into [3, 9)
]
VISUAL_ROWS = [(0, 0, 10, "Dog"), (2, 4, 6, "Speech"), (2, 8, 10, "Speech"), (3, 2, 2, "Cello")]


def _dense_text(rows: list[tuple[int, int, int, str]]) -> str:
    lines = ["filename\tonset\toffset\tevent_labels"]
    lines += [f"{VIDEOS[v]}\t{on}\t{off}\t{name}" for v, on, off, name in rows]
    lines.append("notInSplit1_0_10\t0\t10\tSpeech")
    return "\n".join(lines) + "\n"


def _dense_gt(rows: list[tuple[int, int, int, str]]) -> np.ndarray:
    """(N, 25, 10) class-major ground truth, built directly from the rows above."""
    gt = np.zeros((len(VIDEOS), K, T), dtype=np.int64)
    for video, onset, offset, name in rows:
        for t in range(onset, offset):
            gt[video, CLASS_INDEX[name], t] = 1
    return gt


@pytest.fixture()
def annotations(tmp_path: Path) -> Path:
    root = tmp_path / "llp"
    root.mkdir()
    weak = ["filename\tevent_labels"] + [f"{name}\tSpeech,Dog" for name in VIDEOS]
    (root / "AVVP_test_pd.csv").write_text("\n".join(weak) + "\n")
    (root / "AVVP_eval_audio_pre2024.csv").write_text(_dense_text(AUDIO_ROWS))
    (root / "AVVP_eval_audio.csv").write_text(_dense_text(AUDIO_ROWS[:-1]))
    (root / "AVVP_eval_visual.csv").write_text(_dense_text(VISUAL_ROWS))
    return root


def _predictions(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def grid(*shape: int) -> np.ndarray:
        return (rng.integers(0, 5, size=shape) / 4).astype(np.float32)

    return {
        "filenames": np.array(VIDEOS),
        "global_prob": grid(len(VIDEOS), K),
        "a_prob": grid(len(VIDEOS), K),
        "v_prob": grid(len(VIDEOS), K),
        "frame_prob": grid(len(VIDEOS), T, 2, K),
    }


def _save(path: Path, fields: dict[str, np.ndarray]) -> Path:
    np.savez(path, **fields)
    return path


def _expected(preds: dict[str, np.ndarray], gating: str, audio_rows) -> list[float]:
    ga, gv = _dense_gt(audio_rows), _dense_gt(VISUAL_ROWS)
    return ref_dataset_scores(ref_per_video_scores(preds, ga.tolist(), gv.tolist(), gating))


@pytest.mark.parametrize(
    ("gating", "audio_labels"),
    [("global", "pre2024"), ("modality", "current"), ("mmcse", "pre2024")],
)
def test_scores_json_and_table(annotations, tmp_path, capsys, gating, audio_labels):
    preds = _predictions()
    shuffled = {key: value[[2, 0, 3, 1]] for key, value in preds.items()}  # any row order
    pred_file = _save(tmp_path / "pred.npz", shuffled)
    out = tmp_path / "out" / "scores.json"
    argv = [str(pred_file), "--annotations", str(annotations), "--gating", gating]
    argv += [
        "--audio-labels",
        audio_labels,
        "--json",
        str(out),
        "--per-video",
        str(tmp_path / "v.tsv"),
    ]
    assert main(argv) == 0
    payload = json.loads(out.read_text())
    rows = AUDIO_ROWS if audio_labels == "pre2024" else AUDIO_ROWS[:-1]
    want = _expected(preds, gating, rows)
    assert list(payload)[:10] == list(METRIC_NAMES)
    for name, value in zip(METRIC_NAMES, want, strict=True):
        assert payload[name] == pytest.approx(value, abs=1e-9), name
    protocol = payload["protocol"]
    audio_file = f"AVVP_eval_audio{'_pre2024' if audio_labels == 'pre2024' else ''}.csv"
    md5 = hashlib.md5((annotations / audio_file).read_bytes()).hexdigest()
    assert protocol["annotations"]["audio"] == {"file": audio_file, "md5": md5}
    assert protocol["gating"] == gating and protocol["videos"] == 4
    assert protocol["video_threshold"] == 0.5 and protocol["segment_threshold"] == 0.5
    stdout = capsys.readouterr().out
    assert "Seg Type" in stdout and f"{payload['seg_a']:.2f}" in stdout
    assert f"gating {gating}" in stdout and md5 in stdout
    per_video = (tmp_path / "v.tsv").read_text().splitlines()
    assert per_video[1].split("\t")[0] == VIDEOS[0] and len(per_video) == 5


def test_audio_label_versions_differ(annotations, tmp_path):
    preds = _predictions(seed=1)
    cello = CLASS_INDEX["Cello"]
    preds["global_prob"][3, cello] = 1.0
    preds["frame_prob"][3, :, 0, cello] = 1.0  # Cello heard all along: TP 6 or 4 of 10
    pred_file = _save(tmp_path / "pred.npz", preds)
    results = {}
    for labels in ("pre2024", "current"):
        out = tmp_path / f"{labels}.json"
        argv = [str(pred_file), "--annotations", str(annotations), "--audio-labels", labels]
        assert main([*argv, "--json", str(out)]) == 0
        results[labels] = json.loads(out.read_text())
    assert results["pre2024"]["seg_a"] != results["current"]["seg_a"]
    assert results["pre2024"]["seg_v"] == results["current"]["seg_v"]


def _run_error(annotations: Path, pred_file: Path, capsys, *extra: str) -> str:
    code = main([str(pred_file), "--annotations", str(annotations), *extra])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    assert captured.err.startswith("avvp-eval: error: ")
    return captured.err


def test_missing_and_extra_videos(annotations, tmp_path, capsys):
    preds = _predictions()
    missing = {key: value[:2] for key, value in preds.items()}
    err = _run_error(annotations, _save(tmp_path / "missing.npz", missing), capsys)
    assert "missing.npz" in err and "'filenames'" in err
    assert "lacks 2 video(s)" in err and VIDEOS[2] in err and VIDEOS[3] in err

    extra = dict(preds)
    extra["filenames"] = np.array(VIDEOS[:3] + ["someoneElse_0_10"])
    err = _run_error(annotations, _save(tmp_path / "extra.npz", extra), capsys)
    assert "has 1 video(s) not in the split: someoneElse_0_10" in err
    assert f"lacks 1 video(s) of the split: {VIDEOS[3]}" in err

    twice = dict(preds)
    twice["filenames"] = np.array([VIDEOS[0], VIDEOS[0], VIDEOS[2], VIDEOS[3]])
    err = _run_error(annotations, _save(tmp_path / "twice.npz", twice), capsys)
    assert "more than once" in err and VIDEOS[0] in err


def test_many_missing_videos_are_abbreviated(tmp_path, capsys):
    root = tmp_path / "llp"
    root.mkdir()
    names = [f"video{i:06d}_0_10" for i in range(12)]
    (root / "AVVP_test_pd.csv").write_text(
        "filename\tevent_labels\n" + "".join(f"{n}\tSpeech\n" for n in names)
    )
    header = "filename\tonset\toffset\tevent_labels\n"
    for file in ("AVVP_eval_audio_pre2024.csv", "AVVP_eval_audio.csv", "AVVP_eval_visual.csv"):
        (root / file).write_text(header)
    preds = {key: value[:1] for key, value in _predictions().items()}
    preds["filenames"] = np.array(names[:1])
    err = _run_error(root, _save(tmp_path / "p.npz", preds), capsys)
    assert "lacks 11 video(s)" in err and names[5] in err and names[6] not in err
    assert "(6 more)" in err


def test_wrong_shapes_and_missing_fields(annotations, tmp_path, capsys):
    preds = _predictions()
    bad = dict(preds, frame_prob=preds["frame_prob"].transpose(0, 2, 1, 3))
    err = _run_error(annotations, _save(tmp_path / "shape.npz", bad), capsys)
    assert "shape.npz: field 'frame_prob' has shape (4, 2, 10, 25), expected (4, 10, 2, 25)" in err

    short = dict(preds, a_prob=preds["a_prob"][:3])
    err = _run_error(annotations, _save(tmp_path / "short.npz", short), capsys)
    assert "field 'a_prob' has shape (3, 25)" in err

    ints = dict(preds, v_prob=(preds["v_prob"] > 0.5).astype(np.int64))
    err = _run_error(annotations, _save(tmp_path / "ints.npz", ints), capsys)
    assert "field 'v_prob' has dtype int64" in err

    lacking = {key: value for key, value in preds.items() if key != "global_prob"}
    err = _run_error(annotations, _save(tmp_path / "lacking.npz", lacking), capsys)
    assert "lacking.npz: missing field(s) global_prob" in err


def test_probabilities_outside_unit_interval(annotations, tmp_path, capsys):
    preds = _predictions()
    frame = preds["frame_prob"].copy()
    frame[1, 3, 0, 7] = 1.5
    frame[3, 0, 1, 0] = -0.25
    err = _run_error(
        annotations, _save(tmp_path / "range.npz", dict(preds, frame_prob=frame)), capsys
    )
    assert "range.npz: field 'frame_prob' has values outside [0, 1]" in err
    assert f"2 video(s): {VIDEOS[1]} (1.5), {VIDEOS[3]} (-0.25)" in err

    glob = preds["global_prob"].copy()
    glob[2, 4] = np.nan
    err = _run_error(
        annotations, _save(tmp_path / "nan.npz", dict(preds, global_prob=glob)), capsys
    )
    assert "field 'global_prob'" in err and f"{VIDEOS[2]} (nan)" in err


def test_global_probability_above_one_is_scored_as_the_network_pools_it(
    annotations, tmp_path, capsys
):
    """MMIL pooling lets global_prob exceed 1 (up to 2) when audio and visual attend to
    different seconds; such files, which training writes, score as the reference does."""
    preds = _predictions()
    preds["global_prob"][0, :] = np.where(preds["global_prob"][0] >= 0.5, 1.6, 0.2)
    out = tmp_path / "high.json"
    pred_file = _save(tmp_path / "high.npz", preds)
    assert main([str(pred_file), "--annotations", str(annotations), "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    want = _expected(preds, "global", AUDIO_ROWS)
    for name, value in zip(METRIC_NAMES, want, strict=True):
        assert payload[name] == pytest.approx(value, abs=1e-9), name
    preds["global_prob"][1, 4] = 2.5
    err = _run_error(annotations, _save(tmp_path / "over.npz", preds), capsys)
    assert "field 'global_prob' has values outside [0, 2]" in err and f"{VIDEOS[1]} (2.5)" in err


def test_unreadable_inputs(annotations, tmp_path, capsys):
    err = _run_error(annotations, tmp_path / "absent.npz", capsys)
    assert "absent.npz: predictions file not found" in err

    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    err = _run_error(annotations, junk, capsys)
    assert "junk.npz: not a readable .npz file" in err

    objects = dict(_predictions(), filenames=np.array(VIDEOS, dtype=object))
    err = _run_error(annotations, _save(tmp_path / "objects.npz", objects), capsys)
    assert "objects.npz: field 'filenames' is stored as Python objects" in err

    nested = dict(_predictions(), v_prob=np.array([None] * 4, dtype=object))
    err = _run_error(annotations, _save(tmp_path / "nested.npz", nested), capsys)
    assert "nested.npz: field 'v_prob' is stored as Python objects" in err

    names_2d = dict(_predictions(), filenames=np.array(VIDEOS).reshape(2, 2))
    err = _run_error(annotations, _save(tmp_path / "names.npz", names_2d), capsys)
    assert "field 'filenames' must be a 1-D string array" in err

    pred_file = _save(tmp_path / "pred.npz", _predictions())
    err = _run_error(tmp_path / "nowhere", pred_file, capsys)
    assert "nowhere" in err and "not found" in err


def test_unwritable_outputs(annotations, tmp_path, capsys):
    pred_file = _save(tmp_path / "pred.npz", _predictions())
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    for option in ("--json", "--per-video"):
        err = _run_error(annotations, pred_file, capsys, option, str(blocker / "out"))
        assert "blocker/out: cannot write" in err


def test_argument_errors(annotations, tmp_path):
    pred_file = _save(tmp_path / "pred.npz", _predictions())
    for extra in (["--split", "train"], ["--gating", "han"], ["--segment-threshold", "2"]):
        with pytest.raises(SystemExit) as exit_info:
            main([str(pred_file), "--annotations", str(annotations), *extra])
        assert exit_info.value.code == 2


@pytest.mark.slow
def test_console_script_fails_cleanly(annotations, tmp_path):
    preds = _predictions()
    pred_file = _save(tmp_path / "pred.npz", {key: value[1:] for key, value in preds.items()})
    script = Path(sys.executable).with_name("avvp-eval")
    result = subprocess.run(
        [str(script), str(pred_file), "--annotations", str(annotations)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        f"pred.npz: field 'filenames' lacks 1 video(s) of the split: {VIDEOS[0]}" in result.stderr
    )
