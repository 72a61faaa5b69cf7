"""LLPDataModule: batch contents, shapes, order, streaming vs in-memory, missing videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avvp_lit.data.annotations import load_split
from avvp_lit.data.datamodule import LLPDataModule
from avvp_lit.data.features import FEATURE_SETS, FeatureError
from avvp_lit.data.pack import pack
from tests.helpers.datasets import write_dataset

SHAPES = {name: spec.input_shapes for name, spec in FEATURE_SETS.items()}


@pytest.mark.parametrize("feature_set", ["han", "valor"])
def test_batches_have_the_documented_keys_shapes_and_dtypes(
    tmp_path: Path, feature_set: str
) -> None:
    root = tmp_path / feature_set
    write_dataset(root, feature_set, (6, 5, 5))
    dm = LLPDataModule(root=root, feature_set=feature_set, batch_size=4, progress=False)
    dm.setup("fit")
    dm.setup("test")
    train = next(iter(dm.train_dataloader()))
    expected_train = {"audio", "visual", "visual_st", "label", "index"}
    if feature_set == "valor":
        expected_train |= {"pl_audio", "pl_visual"}
    assert set(train) == expected_train
    for key, shape in SHAPES[feature_set].items():
        assert train[key].shape == (4, *shape) and train[key].dtype == torch.float32
    assert train["label"].shape == (4, 25) and train["index"].dtype == torch.int64
    if feature_set == "valor":
        assert train["pl_audio"].shape == (4, 10, 25)
        video = dm.split("train").filenames[int(train["index"][0])][:11]
        raw = np.load(root / "CLAP/segment_pseudo_labels" / f"{video}.npy")
        assert np.array_equal(train["pl_audio"][0].numpy(), raw)
    test_batches = list(dm.test_dataloader())
    assert set(test_batches[0]) == {
        "audio",
        "visual",
        "visual_st",
        "label",
        "index",
        "gt_audio",
        "gt_visual",
    }
    assert torch.cat([b["index"] for b in test_batches]).tolist() == list(range(5))
    annotations = load_split(root, "test")
    gt = torch.cat([b["gt_audio"] for b in test_batches]).numpy()
    assert np.array_equal(gt, annotations.gt_audio)
    labels = torch.cat([b["label"] for b in test_batches]).numpy()
    assert np.array_equal(labels, annotations.weak)
    first = np.load(
        root / FEATURE_SETS[feature_set]["visual"].folder / f"{annotations.filenames[0][:11]}.npy"
    )
    assert np.array_equal(test_batches[0]["visual"][0].numpy(), first)


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_hdf5_equals_in_memory(tmp_path: Path, workers: int) -> None:
    root = tmp_path / "ds"
    write_dataset(root, "han", (3, 7, 2))
    pack(root, root / "features.h5", progress=False)
    memory = LLPDataModule(root=root, feature_set="han", store="npy", batch_size=3, progress=False)
    stream = LLPDataModule(
        root=root,
        feature_set="han",
        store="h5",
        in_memory=False,
        batch_size=3,
        num_workers=workers,
        progress=False,
    )
    for a, b in zip(memory.val_dataloader(), stream.val_dataloader(), strict=True):
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_missing_videos_error_or_skip(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    names = write_dataset(root, "han", (14, 2, 2))
    gone = [n[:11] for n in names["train"][:12]]
    for video in gone:
        (root / "feats/r2plus1d_18" / f"{video}.npy").unlink()
    strict = LLPDataModule(root=root, feature_set="han", progress=False)
    with pytest.raises(FeatureError) as error:
        strict.setup("fit")
    text = str(error.value)
    assert "12 of 14 train videos have no features" in text
    assert ", ".join(gone[:10]) + ", ... (2 more)" in text and gone[10] not in text
    lenient = LLPDataModule(root=root, feature_set="han", on_missing="skip", progress=False)
    with pytest.warns(UserWarning, match="12 of 14 train videos .* dropped"):
        lenient.setup("fit")
    assert [n[:11] for n in lenient.split("train").filenames] == [
        n[:11] for n in names["train"][12:]
    ]


def _train_batches(module: LLPDataModule, epoch: int) -> list[dict[str, torch.Tensor]]:
    loader = module.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return list(loader)


def test_in_memory_train_batches_are_gathered_like_stacked_items(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_dataset(root, "valor", (11, 2, 2))
    memory = LLPDataModule(root=root, batch_size=4, progress=False, shuffle_seed=3)
    stream = LLPDataModule(root=root, batch_size=4, in_memory=False, progress=False, shuffle_seed=3)
    assert memory.split("train").cache is not None and stream.split("train").cache is None
    for epoch in (0, 1):
        gathered, stacked = _train_batches(memory, epoch), _train_batches(stream, epoch)
        assert [len(b["index"]) for b in gathered] == [4, 4, 3]
        for a, b in zip(gathered, stacked, strict=True):
            assert set(a) == set(b) == {*SHAPES["valor"], "pl_audio", "pl_visual", "label", "index"}
            assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    assert memory.cache_device() == torch.device("cpu")  # no trainer: the host


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_in_memory_dataset_on_the_gpu_serves_device_batches(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_dataset(root, "valor", (5, 2, 2))
    module = LLPDataModule(root=root, batch_size=4, progress=False)
    dataset = module.split("train").to(torch.device("cuda"))
    batch = next(iter(module.train_dataloader()))
    assert dataset.device.type == "cuda" and all(v.is_cuda for v in batch.values())


def test_synthetic_data_is_generated_only_where_asked(tmp_path: Path) -> None:
    synthetic = {"features": "han", "size": "tiny", "seed": 0}
    default = tmp_path / "synthetic_han_tiny"
    typo = tmp_path / "synthetic_han_tinny"
    mistyped = LLPDataModule(
        root=typo, feature_set="han", synthetic=synthetic, default_root=default
    )
    with pytest.raises(FeatureError, match=f"data.root={typo} holds no synthetic dataset"):
        mistyped.prepare_data()
    assert not typo.exists()
    LLPDataModule(root=default, synthetic=synthetic, default_root=default).prepare_data()
    assert (default / ".complete").exists()
    LLPDataModule(root=typo, synthetic=synthetic, generate=True).prepare_data()
    assert (typo / ".complete").exists()
