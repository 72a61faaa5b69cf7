"""Annotation and feature files as other people export them: valid variants accepted,
silent mismatches warned about or refused, and `avvp-data check` opening every file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from avvp_lit.cli.data import main as data_main
from avvp_lit.data.annotations import AnnotationError, load_split
from avvp_lit.data.features import FeatureError
from avvp_lit.data.pack import pack
from avvp_lit.data.stores import open_store
from tests.helpers.datasets import write_dataset


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path / "ds"
    return root, write_dataset(root, "han", (4, 3, 3))


def test_bom_and_spaced_header_are_accepted(dataset) -> None:
    root, _ = dataset
    expected = load_split(root, "test")
    for name in ("AVVP_test_pd.csv", "AVVP_eval_visual.csv"):
        path = root / name
        header, rest = path.read_text().split("\n", 1)
        spaced = "\t".join(f" {cell} " for cell in header.split("\t"))
        path.write_bytes(b"\xef\xbb\xbf" + (spaced + "\n" + rest).encode())
    again = load_split(root, "test")
    assert again.filenames == expected.filenames
    assert np.array_equal(again.gt_visual, expected.gt_visual)


def test_whitespace_around_names_is_stripped(dataset) -> None:
    root, _ = dataset
    expected = load_split(root, "val")
    path = root / "AVVP_eval_audio_pre2024.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *(f" {line}  " for line in lines[1:])]) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load_split(root, "val")
    assert again.gt_audio.sum() > 0
    assert np.array_equal(again.gt_audio, expected.gt_audio)


def test_dense_rows_matching_no_video(dataset) -> None:
    root, _ = dataset
    path = root / "AVVP_eval_visual.csv"
    original = path.read_text()
    path.write_text(original + "zzzzzzzzzzz_0_10\t0\t3\tSpeech\nyyyyyyyyyyy_0_10\t0\t3\tDog\n")
    with pytest.warns(UserWarning, match=r"2 of \d+ rows match no evaluation video"):
        load_split(root, "test")
    header = original.split("\n", 1)[0]
    path.write_text(header + "\nzzzzzzzzzzz_0_10\t0\t3\tSpeech\n")
    with pytest.raises(AnnotationError, match="AVVP_eval_visual.csv: none of its 1 rows"):
        load_split(root, "test")


def test_non_utf8_bytes_name_the_line(dataset) -> None:
    root, _ = dataset
    path = root / "AVVP_val_pd.csv"
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"\t", b"\xe9\t", 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(AnnotationError, match=r"AVVP_val_pd.csv:3: byte 0xe9 is not UTF-8"):
        load_split(root, "val")


def test_zero_byte_npy_and_damaged_h5_are_feature_errors(dataset, tmp_path: Path) -> None:
    root, names = dataset
    store = open_store(root, "han", "npy")
    video = names["train"][0][:11]
    (root / "feats/vggish" / f"{video}.npy").write_bytes(b"")
    with pytest.raises(FeatureError, match=f"video '{video}', modality 'audio'.*not a readable"):
        store.read(video)
    other = tmp_path / "other"
    write_dataset(other, "han", (2, 1, 1))
    packed = pack(other, other / "features.h5", progress=False)
    data = packed.read_bytes()
    packed.write_bytes(data[: len(data) // 3])
    with pytest.raises(FeatureError, match="not a readable HDF5 file"):
        open_store(other, None, "h5")


def damage(root: Path, names: dict[str, list[str]]) -> list[str]:
    """Four kinds of bad feature file; returns the damaged ids."""
    ids = [n[:11] for n in names["train"]]
    np.save(root / "feats/vggish" / f"{ids[0]}.npy", np.zeros((9, 128), np.float32))
    nan = np.zeros((10, 512), np.float32)
    nan[3, 3] = np.nan
    np.save(root / "feats/r2plus1d_18" / f"{ids[1]}.npy", nan)
    (root / "feats/res152" / f"{ids[2]}.npy").write_bytes(b"\x93NUMPY trunc")
    np.save(root / "feats/vggish" / f"{ids[3]}.npy", np.array(["a"] * 1280).reshape(10, 128))
    return ids[:4]


def test_data_check_opens_every_feature_file(dataset, tmp_path: Path, capsys) -> None:
    root, names = dataset
    assert data_main(["check", str(root), "--quiet"]) == 0
    assert "feature files read: 10/10 valid" in capsys.readouterr().out
    bad = damage(root, names)
    out_json = tmp_path / "report.json"
    assert data_main(["check", str(root), "--quiet", "--json", str(out_json)]) == 2
    captured = capsys.readouterr()
    assert "feature files read: 6/10 valid" in captured.out
    for video in bad:
        assert f"video '{video}'" in captured.out
    assert "shape (9, 128), expected (10, 128)" in captured.out
    assert "1 NaN/Inf values" in captured.out
    assert "4 videos with unreadable or invalid features" in captured.err
    assert json.loads(out_json.read_text())["problems"] == [
        "4 videos with unreadable or invalid features"
    ]


def test_data_check_reports_shared_videos_and_missing_folders(dataset, capsys) -> None:
    root, names = dataset
    train = root / "AVVP_train.csv"
    test_row = (root / "AVVP_test_pd.csv").read_text().splitlines()[1]
    train.write_text(train.read_text() + test_row + "\n")
    assert data_main(["check", str(root), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert f"shared train/test: 1 videos: {names['test'][0][:11]}" in captured.out
    import shutil

    shutil.rmtree(root / "feats/res152")
    assert data_main(["check", str(root), "--quiet"]) == 2
    assert "incomplete han feature layout: missing feats/res152" in capsys.readouterr().err


def test_h5_with_pseudo_labels_not_binary_is_listed(tmp_path: Path, capsys) -> None:
    root = tmp_path / "v"
    write_dataset(root, "valor", (2, 1, 1))
    pack(root, root / "features.h5", progress=False)
    with h5py.File(root / "features.h5", "r+") as handle:
        handle["pl_audio"][0, 0, 0] = 0.5
    assert data_main(["check", str(root), "--quiet"]) == 2
    out = capsys.readouterr().out
    assert "pseudo labels must be 0 or 1" in out and "3/4 valid" in out
