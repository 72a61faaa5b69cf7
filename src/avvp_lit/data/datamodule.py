"""The LightningDataModule serving a dataset folder (annotations + a feature store).

Batches are dicts of tensors:
- ``audio``, ``visual``, ``visual_st``: the feature set's arrays, float32;
- ``label`` (B, 25) weak labels; ``index`` (B,) the video's position in the split;
- train, when the feature set has them: ``pl_audio``, ``pl_visual`` (B, 10, 25);
- val/test: ``gt_audio``, ``gt_visual`` (B, 10, 25) dense labels.
Val/test order is the split file's order.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from avvp_lit.data.annotations import (
    SplitAnnotations,
    load_split,
    shared_videos,
    split_feature_ids,
)
from avvp_lit.data.features import FeatureError, FeatureSet
from avvp_lit.data.stores import ON_MISSING, FeatureStore, open_store
from avvp_lit.utils.errors import first_names
from avvp_lit.utils.progress import progress_bar

MISSING_SHOWN = 10
PSEUDO_LABEL_KEYS = ("pl_audio", "pl_visual")


def drop_missing(
    annotations: SplitAnnotations, store: FeatureStore, *, on_missing: str
) -> SplitAnnotations:
    """Check that the store holds every video of the split; drop the absent ones if asked.

    ``on_missing="error"`` raises listing the missing ids (count + first 10);
    ``"skip"`` warns with the count and the videos dropped.
    """
    ids = annotations.feature_ids
    missing = set(store.missing(ids))
    if not missing:
        return annotations
    listed = [v for v in ids if v in missing]
    head = first_names(listed, MISSING_SHOWN)
    message = (
        f"{len(listed)} of {len(ids)} {annotations.split} videos have no features in "
        f"{store.location}: {head}"
    )
    if on_missing == "error":
        raise FeatureError(message + " (set data.on_missing=skip to drop them)")
    if on_missing not in ON_MISSING:
        raise FeatureError(f"on_missing must be one of {', '.join(ON_MISSING)}, not {on_missing!r}")
    warnings.warn(message + "; dropped", stacklevel=2)
    keep = np.array([v not in missing for v in ids])

    def select(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else array[keep]

    return SplitAnnotations(
        split=annotations.split,
        filenames=[n for n, k in zip(annotations.filenames, keep, strict=True) if k],
        weak=annotations.weak[keep],
        gt_audio=select(annotations.gt_audio),
        gt_visual=select(annotations.gt_visual),
        files=annotations.files,
    )


def warn_shared_videos(root: Path) -> None:
    """Warn (once per pair of splits) when a video is listed in two split files: the
    run trains, selects or tests on it twice (``avvp-data check`` reports it too)."""
    for (a, b), shared in shared_videos(split_feature_ids(root)).items():
        warnings.warn(
            f"{root}: {len(shared)} videos are in both the {a} and the {b} split "
            f"({first_names(shared, MISSING_SHOWN)}); numbers on {b} include videos the "
            f"model saw in {a}",
            stacklevel=2,
        )


class LLPDataset(Dataset):
    """One split: features from a store, labels from the annotations.

    ``in_memory`` reads every video once (with a progress bar) into stacked tensors, and a
    DataLoader batch is then one gather per key (:meth:`__getitems__`), on whichever device
    :meth:`to` moved the tensors to; otherwise each item is read from the store on access
    (HDF5 handles per worker) and the DataLoader stacks them.
    """

    def __init__(
        self,
        annotations: SplitAnnotations,
        store: FeatureStore,
        *,
        in_memory: bool,
        with_pseudo_labels: bool,
        progress: bool = True,
    ) -> None:
        self.annotations = annotations
        self.store = store
        self.ids = annotations.feature_ids
        self.keys = tuple(
            k for k in store.feature_set.keys if with_pseudo_labels or k not in PSEUDO_LABEL_KEYS
        )
        self.labels = torch.from_numpy(annotations.weak)
        self.dense = (
            None
            if annotations.gt_audio is None
            else {
                "gt_audio": torch.from_numpy(annotations.gt_audio.astype(np.float32)),
                "gt_visual": torch.from_numpy(annotations.gt_visual.astype(np.float32)),
            }
        )
        self.cache = self._load_all(progress) if in_memory else None

    @property
    def filenames(self) -> list[str]:
        return self.annotations.filenames

    def _load_all(self, progress: bool) -> dict[str, torch.Tensor]:
        spec = self.store.feature_set
        arrays = {k: np.empty((len(self), *spec[k].shape), np.float32) for k in self.keys}
        description = f"loading {self.annotations.split} features"
        with progress_bar(description, total=len(self), enabled=progress) as bar:
            for row, video in enumerate(self.ids):
                item = self.store.read(video)
                for key in self.keys:
                    arrays[key][row] = item[key]
                bar.advance()
        return {k: torch.from_numpy(v) for k, v in arrays.items()}

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device) -> LLPDataset:
        """Move the in-memory tensors to ``device`` (a GPU run's cache lives on the GPU, so
        no batch is copied from the host); a streaming dataset stays on the host."""
        if self.cache is None:
            return self
        self.cache = {k: v.to(device) for k, v in self.cache.items()}
        self.labels = self.labels.to(device)
        if self.dense is not None:
            self.dense = {k: v.to(device) for k, v in self.dense.items()}
        return self

    @property
    def device(self) -> torch.device:
        return self.labels.device

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor] | list[dict]:
        """A whole batch: one gather per key from the in-memory tensors (the DataLoader
        passes it through :func:`pass_batch`); streaming datasets return items."""
        if self.cache is None:
            return [self[i] for i in indices]
        index = torch.as_tensor(indices, dtype=torch.long).to(self.device)
        batch = {k: v[index] for k, v in self.cache.items()}
        batch["label"] = self.labels[index]
        batch["index"] = index
        if self.dense is not None:
            batch.update({k: v[index] for k, v in self.dense.items()})
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.cache is not None:
            item = {k: v[index] for k, v in self.cache.items()}
        else:
            arrays = self.store.read(self.ids[index])
            item = {k: torch.from_numpy(arrays[k]) for k in self.keys}
        item["label"] = self.labels[index]
        item["index"] = torch.tensor(index, dtype=torch.long)
        if self.dense is not None:
            item.update({k: v[index] for k, v in self.dense.items()})
        return item


def pass_batch(batch: dict[str, torch.Tensor] | list[dict]) -> dict[str, torch.Tensor]:
    """The DataLoader's collate: gathered batches pass through, items are stacked."""
    return batch if isinstance(batch, dict) else default_collate(batch)


class EpochShuffleSampler(Sampler[int]):
    """A shuffle whose order depends only on (seed, epoch), so a resumed epoch replays it.

    Lightning calls ``set_epoch`` before each training epoch.
    """

    def __init__(self, size: int, *, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 7_919 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


class LLPDataModule(L.LightningDataModule):
    """LLP splits from ``root`` (annotation files + ``features.h5`` or the npy layout).

    ``synthetic`` (keyword arguments of ``avvp_lit.data.synthetic.generate``) makes
    ``prepare_data`` generate the built-in synthetic dataset at ``root`` when it is
    absent and ``generate`` allows it: ``auto`` only at ``default_root`` (the configured
    default location, so a mistyped ``data.root`` is an error, not a new dataset),
    ``true`` anywhere, ``false`` never.
    ``test_split`` is the split the test loop scores (``avvp-evaluate split=val``).
    ``on_device`` (auto | true | false) keeps an ``in_memory`` dataset on the trainer's
    device; ``auto``: on a CUDA device (the batches are then gathered there, with no
    per-step host copy), on the host otherwise.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        feature_set: str = "valor",
        store: str = "auto",
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        in_memory: bool = True,
        audio_labels: str = "pre2024",
        on_missing: str = "error",
        pin_memory: bool = False,
        multiprocessing_context: str | None = None,
        synthetic: dict[str, Any] | None = None,
        shuffle_seed: int = 0,
        test_split: str = "test",
        progress: bool = True,
        on_device: str | bool = "auto",
        generate: str | bool = "auto",
        default_root: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.feature_set_name = feature_set
        self.store_kind = store
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.in_memory = in_memory
        self.audio_labels = audio_labels
        self.on_missing = on_missing
        self.pin_memory = pin_memory
        self.multiprocessing_context = multiprocessing_context
        self.synthetic = dict(synthetic) if synthetic else None
        self.shuffle_seed = shuffle_seed
        self.test_split = test_split
        self.progress = progress
        self.on_device = on_device
        self.generate = generate
        self.default_root = None if default_root is None else Path(default_root)
        self.datasets: dict[str, LLPDataset] = {}

    @property
    def feature_set(self) -> FeatureSet:
        return self.open_store().feature_set

    def prepare_data(self) -> None:
        if self.synthetic is None:
            return
        from avvp_lit.data.synthetic import COMPLETE_MARKER, generate

        if (self.root / COMPLETE_MARKER).exists():
            return
        at_default = self.default_root is not None and (
            self.root.resolve() == self.default_root.resolve()
        )
        if self.generate is True or (self.generate == "auto" and at_default):
            generate(self.root, **self.synthetic)
            return
        size, features = self.synthetic.get("size", "default"), self.synthetic.get("features")
        raise FeatureError(
            f"data.root={self.root} holds no synthetic dataset (generated only at "
            f"{self.default_root} unless asked): point data.root to a dataset, generate it "
            f"with `avvp-synth {self.root} --features {features} --size {size}`, or pass "
            "data.generate=true"
        )

    def open_store(self) -> FeatureStore:
        store = open_store(self.root, self.feature_set_name, self.store_kind)
        if store.feature_set.name != self.feature_set_name:
            raise FeatureError(
                f"{store.location} holds feature set {store.feature_set.name!r}, "
                f"but data.feature_set is {self.feature_set_name!r}"
            )
        return store

    def split(self, name: str) -> LLPDataset:
        """The dataset of one split, built on first use."""
        if name not in self.datasets:
            store = self.open_store()
            annotations = drop_missing(
                load_split(self.root, name, self.audio_labels), store, on_missing=self.on_missing
            )
            dataset = LLPDataset(
                annotations,
                store,
                in_memory=self.in_memory,
                with_pseudo_labels=name == "train",
                progress=self.progress,
            )
            self.datasets[name] = dataset.to(self.cache_device())
        return self.datasets[name]

    def cache_device(self) -> torch.device:
        """Where the in-memory tensors live: the trainer's device where ``on_device``
        asks for it (``auto``: a CUDA device), else the host."""
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        wanted = device.type == "cuda" if self.on_device == "auto" else bool(self.on_device)
        return device if wanted and self.in_memory else torch.device("cpu")

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": (self.test_split,)}
        if stage in ("fit", None):
            warn_shared_videos(self.root)
        for name in wanted.get(stage or "", ("train", "val", "test")):
            self.split(name)

    def _loader(self, name: str, *, shuffle: bool, batch_size: int) -> DataLoader:
        dataset = self.split(name)
        workers = self.num_workers if dataset.device.type == "cpu" else 0
        return DataLoader(
            dataset,
            batch_size=batch_size,
            collate_fn=pass_batch,
            sampler=EpochShuffleSampler(len(dataset), seed=self.shuffle_seed) if shuffle else None,
            num_workers=workers,
            pin_memory=self.pin_memory and dataset.device.type == "cpu",
            persistent_workers=workers > 0,
            multiprocessing_context=self.multiprocessing_context if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, shuffle=False, batch_size=self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
