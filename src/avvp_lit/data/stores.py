"""Feature stores: the released one-`.npy`-per-video layout and a single HDF5 file.

Both give random access by feature id (the first 11 characters of a filename) and
validate every array against the feature set's declaration on read. The HDF5 file is
opened lazily and re-opened in each process, so every DataLoader worker gets its own
handle (h5py handles must not cross a fork).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import h5py
import numpy as np

from avvp_lit.data.features import FeatureError, FeatureSet, get_feature_set
from avvp_lit.utils.errors import one_line

H5_FILENAME = "features.h5"
H5_IDS = "ids"


class FeatureStore(ABC):
    """Random access to the per-video arrays of one feature set."""

    feature_set: FeatureSet

    @abstractmethod
    def ids(self) -> set[str]:
        """Feature ids for which every modality is present."""

    @abstractmethod
    def _raw(self, video: str, key: str) -> np.ndarray: ...

    @property
    @abstractmethod
    def location(self) -> str: ...

    def read(self, video: str) -> dict[str, np.ndarray]:
        """All modalities of one video, validated, as float32 arrays."""
        return {
            m.key: m.check(self._raw(video, m.key), video, self.location)
            for m in self.feature_set.modalities
        }

    def missing(self, videos: list[str]) -> list[str]:
        """The ids in ``videos`` that this store lacks (any modality), in input order."""
        present = self.ids()
        return [v for v in videos if v not in present]


class NpyStore(FeatureStore):
    """The released layout: ``<root>/<folder>/<id>.npy`` per modality (docs/avvp.md §2)."""

    def __init__(self, root: Path, feature_set: str | FeatureSet) -> None:
        self.root = Path(root)
        self.feature_set = (
            get_feature_set(feature_set) if isinstance(feature_set, str) else feature_set
        )
        self._ids: set[str] | None = None

    @property
    def location(self) -> str:
        return str(self.root)

    def path(self, video: str, key: str) -> Path:
        return self.root / self.feature_set[key].folder / f"{video}.npy"

    def ids(self) -> set[str]:
        if self._ids is None:
            per_modality = []
            for modality in self.feature_set.modalities:
                folder = self.root / modality.folder
                names = {e.name[:-4] for e in os.scandir(folder)} if folder.is_dir() else set()
                per_modality.append({n for n in names if n})
            self._ids = set.intersection(*per_modality)
        return self._ids

    def _raw(self, video: str, key: str) -> np.ndarray:
        path = self.path(video, key)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise FeatureError(
                f"video {video!r}, modality {key!r}: {path} does not exist"
            ) from None
        except (ValueError, EOFError, OSError) as error:
            reason = one_line(error)
            raise FeatureError(
                f"video {video!r}, modality {key!r}: {path}: not a readable .npy file ({reason})"
            ) from None


class H5Store(FeatureStore):
    """One HDF5 file: a dataset per modality key of shape (N, *shape), and ``ids`` (N,).

    The file's ``feature_set`` attribute names the feature set it was packed from.
    """

    def __init__(self, path: Path, feature_set: str | FeatureSet | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FeatureError(f"{self.path}: HDF5 feature store not found")
        try:
            with h5py.File(self.path, "r") as handle:
                stored = str(handle.attrs.get("feature_set", ""))
                if not handle.attrs.get("complete", False):
                    raise FeatureError(f"{self.path}: incomplete HDF5 store (an interrupted pack?)")
                if H5_IDS not in handle:
                    raise FeatureError(
                        f"{self.path}: no '{H5_IDS}' dataset (not an avvp-pack store)"
                    )
                ids = [i.decode() if isinstance(i, bytes) else str(i) for i in handle[H5_IDS][()]]
                shapes = {key: handle[key].shape for key in handle if key != H5_IDS}
        except OSError as error:
            reason = one_line(error)
            raise FeatureError(f"{self.path}: not a readable HDF5 file ({reason})") from None
        requested = feature_set.name if isinstance(feature_set, FeatureSet) else feature_set
        if requested is not None and requested != stored:
            raise FeatureError(
                f"{self.path}: holds feature set {stored!r}, but {requested!r} was requested"
            )
        self.feature_set = get_feature_set(stored)
        self._check_layout(len(ids), shapes)
        self._row = {video: row for row, video in enumerate(ids)}
        self._handle: h5py.File | None = None
        self._pid: int | None = None

    def _check_layout(self, videos: int, shapes: dict[str, tuple[int, ...]]) -> None:
        """Every modality's dataset holds one row per id, of the declared shape: a store
        whose arrays disagree with its ``ids`` is refused when it opens, not video by
        video."""
        for modality in self.feature_set.modalities:
            where = f"{self.path}: dataset '{modality.key}' ({modality.folder})"
            shape = shapes.get(modality.key)
            if shape is None:
                raise FeatureError(f"{where} is missing")
            if tuple(shape[1:]) != modality.shape:
                raise FeatureError(
                    f"{where} has rows of shape {tuple(shape[1:])}, expected {modality.shape}"
                )
            if shape[0] != videos:
                raise FeatureError(
                    f"{where} has {shape[0]} rows but '{H5_IDS}' names {videos} videos"
                )

    @property
    def location(self) -> str:
        return str(self.path)

    def ids(self) -> set[str]:
        return set(self._row)

    def _file(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def _raw(self, video: str, key: str) -> np.ndarray:
        try:
            row = self._row[video]
        except KeyError:
            raise FeatureError(f"video {video!r} is not in {self.path}") from None
        try:
            return self._file()[key][row]
        except (OSError, KeyError) as error:
            reason = one_line(error)
            raise FeatureError(
                f"video {video!r}, modality {key!r}: {self.path}: cannot read ({reason})"
            ) from None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"] = None
        state["_pid"] = None
        return state


STORE_KINDS: tuple[str, ...] = ("auto", "npy", "h5")  # data.store / avvp-parse store=
ON_MISSING: tuple[str, ...] = ("error", "skip")  # what to do with videos without features


def h5_file(root: Path, kind: str = "auto") -> Path | None:
    """The HDF5 file ``open_store(root, ..., kind)`` reads, or None for the npy layout."""
    if kind not in STORE_KINDS:
        raise FeatureError(f"unknown store kind {kind!r}; choose one of {', '.join(STORE_KINDS)}")
    h5_path = root if root.suffix in (".h5", ".hdf5") else root / H5_FILENAME
    if kind == "h5" or (kind == "auto" and h5_path.is_file()):
        return h5_path
    return None


def open_store(root: Path, feature_set: str | None, kind: str = "auto") -> FeatureStore:
    """The store of a dataset folder: ``h5`` (``root/features.h5``), ``npy``, or ``auto``.

    ``auto`` prefers the HDF5 file when present; ``root`` may also be an ``.h5`` path.
    ``feature_set=None`` takes the HDF5 file's own; the npy layout needs it named.
    """
    root = Path(root)
    h5_path = h5_file(root, kind)
    if h5_path is not None:
        return H5Store(h5_path, feature_set)
    if feature_set is None:
        raise FeatureError(f"{root}: name the feature set of an npy layout (han or valor)")
    return NpyStore(root, feature_set)
