"""Feature stores: npy → HDF5 round trip, atomic and resumable packing, validation on read."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from avvp_lit.cli.pack import main as pack_main
from avvp_lit.data import pack as pack_module
from avvp_lit.data.features import FEATURE_SETS, FeatureError
from avvp_lit.data.pack import pack
from avvp_lit.data.stores import H5Store, NpyStore, open_store
from tests.helpers.datasets import write_dataset


@pytest.fixture(params=["han", "valor"])
def dataset(request, tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / request.param
    write_dataset(root, request.param, (5, 3, 3))
    return root, request.param


def test_pack_round_trip_is_identical(dataset) -> None:
    root, feature_set = dataset
    out = pack(root, root / "features.h5", progress=False)
    npy, h5 = NpyStore(root, feature_set), H5Store(out)
    assert h5.feature_set.name == feature_set and h5.ids() == npy.ids() and len(h5.ids()) == 11
    for video in sorted(npy.ids()):
        raw = {
            m.key: np.load(root / m.folder / f"{video}.npy")
            for m in FEATURE_SETS[feature_set].modalities
        }
        packed = h5.read(video)
        for key, array in raw.items():
            assert np.array_equal(packed[key], array.astype(np.float32)), (video, key)
    assert isinstance(open_store(root, feature_set), H5Store)
    assert isinstance(open_store(root, feature_set, "npy"), NpyStore)


def test_interrupted_pack_leaves_no_complete_file_and_resumes(tmp_path, monkeypatch) -> None:
    root = tmp_path / "ds"
    write_dataset(root, "han", (40, 20, 20))
    out = root / "features.h5"
    monkeypatch.setattr(pack_module, "CHUNK", 16)
    calls = {"n": 0}
    real_read = NpyStore.read

    def failing_read(self, video):
        calls["n"] += 1
        if calls["n"] == 40:
            raise KeyboardInterrupt
        return real_read(self, video)

    monkeypatch.setattr(NpyStore, "read", failing_read)
    with pytest.raises(KeyboardInterrupt):
        pack(root, out, progress=False)
    partial = root / "features.h5.partial"
    assert not out.exists() and partial.exists()
    with h5py.File(partial) as handle:
        assert handle["written"][()].sum() == 32 and not handle.attrs["complete"]
    with pytest.raises(FeatureError, match="incomplete"):
        H5Store(partial)
    monkeypatch.setattr(NpyStore, "read", real_read)
    reads = {"n": 0}

    def counting_read(self, video):
        reads["n"] += 1
        return real_read(self, video)

    monkeypatch.setattr(NpyStore, "read", counting_read)
    pack(root, out, resume=True, progress=False)
    assert reads["n"] == 80 - 32 and out.exists() and not partial.exists()
    store = H5Store(out)
    for video in sorted(store.ids()):
        assert np.array_equal(
            store.read(video)["visual"], np.load(root / "feats/res152" / f"{video}.npy")
        )


def test_pack_cli_reports_missing_videos(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ds"
    names = write_dataset(root, "han", (3, 2, 2))
    victim = names["val"][0][:11]
    (root / "feats/vggish" / f"{victim}.npy").unlink()
    assert pack_main([str(root), str(root / "features.h5")]) == 2
    assert (
        f"1 videos listed in the split files of {root} have no complete features: {victim}"
        in capsys.readouterr().err
    )
    assert pack_main([str(root), str(root / "features.h5"), "--on-missing", "skip"]) == 0
    assert victim not in H5Store(root / "features.h5").ids()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((10, 127), np.float32), r"shape \(10, 127\), expected \(10, 128\)"),
        (np.array([["a"] * 128] * 10), "cannot be cast to float32"),
        (np.full((10, 128), np.nan, np.float32), "1280 NaN/Inf values"),
    ],
)
def test_bad_arrays_name_video_and_modality(tmp_path, array, message) -> None:
    root = tmp_path / "ds"
    names = write_dataset(root, "han", (2, 1, 1))
    video = names["train"][1][:11]
    np.save(root / "feats/vggish" / f"{video}.npy", array)
    with pytest.raises(
        FeatureError, match=rf"video '{video}', modality 'audio' \(feats/vggish\).*{message}"
    ):
        NpyStore(root, "han").read(video)


def test_integer_features_are_cast_and_pseudo_labels_checked(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    names = write_dataset(root, "valor", (2, 1, 1))
    video = names["train"][0][:11]
    np.save(root / "CLIP/features" / f"{video}.npy", np.ones((10, 768), np.int16))
    assert NpyStore(root, "valor").read(video)["visual"].dtype == np.float32
    np.save(root / "CLAP/segment_pseudo_labels" / f"{video}.npy", np.full((10, 25), 2))
    with pytest.raises(FeatureError, match="modality 'pl_audio'.*must be 0 or 1"):
        NpyStore(root, "valor").read(video)


def test_h5_store_reopens_in_each_process(dataset) -> None:
    root, _ = dataset
    store = H5Store(pack(root, root / "features.h5", progress=False))
    video = sorted(store.ids())[0]
    before = store.read(video)
    clone = pickle.loads(pickle.dumps(store))
    assert clone._handle is None
    after = clone.read(video)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_h5_feature_set_mismatch(dataset) -> None:
    root, feature_set = dataset
    out = pack(root, root / "features.h5", progress=False)
    other = "valor" if feature_set == "han" else "han"
    with pytest.raises(FeatureError, match=f"holds feature set '{feature_set}', but '{other}'"):
        H5Store(out, other)


def test_feature_sets_declare_the_released_shapes() -> None:
    """The one declaration every store, network probe, benchmark and test reads its
    shapes from, pinned to the released layouts (README, "Data")."""
    assert FEATURE_SETS["han"].input_shapes == {
        "audio": (10, 128),
        "visual": (80, 2048),
        "visual_st": (10, 512),
    }
    assert FEATURE_SETS["valor"].shapes == {
        "audio": (64, 768),
        "visual": (10, 768),
        "visual_st": (10, 512),
        "pl_audio": (10, 25),
        "pl_visual": (10, 25),
    }
