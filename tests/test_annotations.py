"""LLP annotation parsing: the real files, an independent rasteriser, and bad input."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from avvp_lit.classes import CLASSES
from avvp_lit.data.annotations import AnnotationError, feature_id, load_split, read_dense_labels
from avvp_lit.data.check import check_dataset
from tests.helpers.datasets import HEADER_DENSE, HEADER_WEAK, write_dataset

README_MD5 = {
    "AVVP_dataset_full.csv": "214b996efd41f3dfa08ed49426c85969",
    "AVVP_train.csv": "cefac8ac8de324ca2018c11871928f8c",
    "AVVP_val_pd.csv": "fa1465a99f73ab42a510b6f67b682fd7",
    "AVVP_test_pd.csv": "119973bc9535a425c49b517f73aaf3b4",
    "AVVP_eval_audio.csv": "98d8ce2369078d43aa1df26d3ef2894c",
    "AVVP_eval_audio_pre2024.csv": "a8b6b747e59a4ea2501e51cd717f3b4f",
    "AVVP_eval_visual.csv": "3d25e5a6033e2ef7c7e391cfbfdc01f9",
}


def test_real_files_are_the_released_ones(llp_dir: Path) -> None:
    for name, md5 in README_MD5.items():
        assert hashlib.md5((llp_dir / name).read_bytes()).hexdigest() == md5, name


def test_real_splits_have_the_published_statistics(llp_dir: Path) -> None:
    train, val, test = (load_split(llp_dir, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (10_000, 649, 1_200)
    assert train.gt_audio is None and train.gt_visual is None
    counts = np.bincount(train.weak.sum(axis=1).astype(int))
    assert counts[1:4].tolist() == [4032, 5879, 89]
    assert train.weak[:, CLASSES.index("Speech")].sum() == 4988
    assert int((test.gt_visual.sum(axis=(1, 2)) == 0).sum()) == 121
    assert test.gt_audio.shape == (1200, 10, 25) and test.gt_audio.dtype == np.uint8


def _reference_dense(path: Path, filenames: list[str]) -> np.ndarray:
    """A per-row loop over the raw file, straight from the protocol text."""
    gt = np.zeros((len(filenames), 10, 25), dtype=np.uint8)
    where = {n: i for i, n in enumerate(filenames)}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["filename"] in where:
                c = CLASSES.index(row["event_labels"])
                for t in range(int(float(row["onset"])), int(float(row["offset"]))):
                    gt[where[row["filename"]], t, c] = 1
    return gt


@pytest.mark.parametrize("audio_labels", ["pre2024", "current"])
def test_dense_labels_match_a_row_loop(llp_dir: Path, audio_labels: str) -> None:
    audio_file = {"pre2024": "AVVP_eval_audio_pre2024.csv", "current": "AVVP_eval_audio.csv"}
    for split in ("val", "test"):
        ann = load_split(llp_dir, split, audio_labels)
        assert np.array_equal(
            ann.gt_audio, _reference_dense(llp_dir / audio_file[audio_labels], ann.filenames)
        )
        assert np.array_equal(
            ann.gt_visual, _reference_dense(llp_dir / "AVVP_eval_visual.csv", ann.filenames)
        )


def test_pre2024_and_current_differ_on_two_test_videos(llp_dir: Path) -> None:
    old, new = load_split(llp_dir, "test", "pre2024"), load_split(llp_dir, "test", "current")
    changed = np.flatnonzero((old.gt_audio != new.gt_audio).any(axis=(1, 2)))
    assert sorted(old.filenames[i] for i in changed) == ["JfZEqeLZqWk_30_40", "KvIjsmANkxI_10_20"]


def test_check_reports_the_readme_quirks(llp_dir: Path) -> None:
    report = check_dataset(llp_dir)
    assert report.count("AVVP_eval_audio.csv", "rows matching no video") == 14
    assert report.count("AVVP_eval_visual.csv", "rows matching no video") == 11
    assert report.count("AVVP_eval_audio_pre2024.csv", "rows matching no video") == 17
    assert report.count("AVVP_eval_audio.csv", "onset == offset (marks nothing)") == 5
    assert report.count("AVVP_eval_audio.csv", "onset > offset (marks nothing)") == 1
    assert report.count("AVVP_eval_audio.csv", "duplicate rows") == 8
    assert report.count("AVVP_eval_audio.csv", "overlapping or touching intervals of one class") > 0
    assert report.count("AVVP_eval_visual.csv", "dense classes absent from the weak labels") > 0
    assert report.splits["train"]["labels_per_video"] == {1: 4032, 2: 5879, 3: 89}


def test_avvp_data_check_cli(llp_dir: Path, capsys: pytest.CaptureFixture, monkeypatch) -> None:
    from avvp_lit.cli.data import main

    monkeypatch.setenv("COLUMNS", "250")
    assert main(["check", str(llp_dir)]) == 0
    rows = [
        line for line in capsys.readouterr().out.splitlines() if "rows matching no video" in line
    ]
    assert [r.split("│")[3].strip() for r in rows] == ["17", "14", "11"]


def test_feature_ids_of_awkward_filenames() -> None:
    assert feature_id("-0Wvb_qXkBE_30_40") == "-0Wvb_qXkBE"
    assert feature_id("AP0061o0Nvk_101.8_111.8") == "AP0061o0Nvk"


def _dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    write_dataset(root, "han", (4, 3, 3))
    return root


def _append(path: Path, line: str) -> int:
    text = path.read_text()
    path.write_text(text + line)
    return text.count("\n") + 1


@pytest.mark.parametrize(
    ("file", "line", "field", "message"),
    [
        (
            "AVVP_test_pd.csv",
            "ZZZZZZZZZZZ_0_10\tSpeech,Unicorn\n",
            "event_labels",
            "unknown class 'Unicorn'",
        ),
        (
            "AVVP_test_pd.csv",
            "ZZZZZZZZZZZ_0_10\tSpeech\textra\n",
            None,
            "expected 2 tab-separated columns",
        ),
        ("AVVP_eval_visual.csv", "ZZZZZZZZZZZ_0_10\t5\t3\tSpeech\n", "onset", "after offset"),
        ("AVVP_eval_visual.csv", "ZZZZZZZZZZZ_0_10\t0\t11\tSpeech\n", "offset", "outside [0, 10]"),
        ("AVVP_eval_visual.csv", "ZZZZZZZZZZZ_0_10\t-1\t3\tSpeech\n", "onset", "outside [0, 10]"),
        ("AVVP_eval_visual.csv", "ZZZZZZZZZZZ_0_10\tfive\t6\tSpeech\n", "onset", "not a number"),
        (
            "AVVP_eval_visual.csv",
            "ZZZZZZZZZZZ_0_10\t1\t3\tDragon\n",
            "event_labels",
            "unknown class 'Dragon'",
        ),
    ],
)
def test_bad_input_names_file_line_and_field(tmp_path, file, line, field, message) -> None:
    root = _dataset(tmp_path)
    number = _append(root / file, line)
    with pytest.raises(AnnotationError) as error:
        load_split(root, "test")
    text = str(error.value)
    assert f"{file}:{number}" in text and message in text
    if field:
        assert f"field '{field}'" in text


def test_video_listed_twice_in_a_split(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    first = (root / "AVVP_val_pd.csv").read_text().splitlines()[1]
    number = _append(root / "AVVP_val_pd.csv", first + "\n")
    with pytest.raises(
        AnnotationError, match=rf"AVVP_val_pd.csv:{number}: field 'filename'.*listed twice.*line 2"
    ):
        load_split(root, "val")


def test_empty_split(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    (root / "AVVP_train.csv").write_text(HEADER_WEAK)
    with pytest.raises(AnnotationError, match="AVVP_train.csv: the split is empty"):
        load_split(root, "train")


def test_wrong_header_and_missing_file(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    (root / "AVVP_eval_audio_pre2024.csv").write_text(HEADER_DENSE.replace("onset", "start"))
    with pytest.raises(AnnotationError, match="AVVP_eval_audio_pre2024.csv:1: header"):
        load_split(root, "val")
    (root / "AVVP_eval_visual.csv").unlink()
    with pytest.raises(AnnotationError, match="AVVP_eval_visual.csv: annotation file not found"):
        load_split(root, "val", "current")


def test_reversed_interval_is_accepted_only_in_the_released_files(
    llp_dir: Path, tmp_path: Path
) -> None:
    released = read_dense_labels(llp_dir / "AVVP_eval_audio.csv")
    assert released.released and (released.onset > released.offset).sum() == 1
    copy = tmp_path / "AVVP_eval_audio.csv"
    copy.write_text((llp_dir / "AVVP_eval_audio.csv").read_text() + "x\t1\t2\tSpeech\n")
    with pytest.raises(AnnotationError, match="onset 9 is after offset 0"):
        read_dense_labels(copy)


def test_overlapping_rows_merge_and_empty_rows_mark_nothing(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    name = load_split(root, "test").filenames[0]
    rows = [(name, 1, 4, "Dog"), (name, 3, 6, "Dog"), (name, 8, 8, "Cat")]
    (root / "AVVP_eval_visual.csv").write_text(
        HEADER_DENSE + "".join(f"{n}\t{a}\t{b}\t{c}\n" for n, a, b, c in rows)
    )
    gt = load_split(root, "test").gt_visual[0]
    assert gt[:, CLASSES.index("Dog")].tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert gt.sum() == 5
