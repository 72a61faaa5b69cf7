"""`avvp-pack ROOT OUT.h5`: pack the released npy layout into one HDF5 store.

The file is written as ``OUT.h5.partial`` and renamed only when every video is in, so
an interrupted pack never leaves a file that looks complete; ``--resume`` continues a
partial file from the first video not yet written.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

from avvp_lit.data.annotations import SPLIT_FILES, read_weak_labels
from avvp_lit.data.features import FEATURE_SETS, FeatureError, FeatureSet, get_feature_set
from avvp_lit.data.stores import H5_IDS, NpyStore
from avvp_lit.utils.errors import first_names
from avvp_lit.utils.progress import progress_bar

WRITTEN = "written"
CHUNK = 64


def complete_feature_set(root: Path) -> FeatureSet:
    """The feature set whose folders all exist under ``root`` (VALOR preferred)."""
    for name in ("valor", "han"):
        spec = FEATURE_SETS[name]
        if all((Path(root) / m.folder).is_dir() for m in spec.modalities):
            return spec
    raise FeatureError(
        f"{root}: no complete feature layout found; expected the folders of one of "
        + "; ".join(
            f"{n}: {', '.join(m.folder for m in s.modalities)}" for n, s in FEATURE_SETS.items()
        )
    )


def listed_videos(root: Path) -> list[str]:
    """Feature ids of every video in the split files present in ``root``, in file order."""
    seen: dict[str, None] = {}
    for name in SPLIT_FILES.values():
        path = Path(root) / name
        if path.is_file():
            for filename in read_weak_labels(path).filenames:
                seen.setdefault(filename[:11], None)
    return list(seen)


def videos_to_pack(store: NpyStore, *, on_missing: str) -> list[str]:
    """Every video the annotations list (or, without split files, every video present)."""
    listed = listed_videos(store.root)
    if not listed:
        return sorted(store.ids())
    missing = store.missing(listed)
    if missing:
        message = (
            f"{len(missing)} videos listed in the split files of {store.root} have no complete "
            f"features: {first_names(missing, 10)}"
        )
        if on_missing == "error":
            raise FeatureError(message + " (use --on-missing skip to pack the rest)")
        print(f"warning: {message}; packing without them", file=sys.stderr)
        absent = set(missing)
        listed = [v for v in listed if v not in absent]
    return listed


def _create(path: Path, spec: FeatureSet, videos: list[str]) -> None:
    with h5py.File(path, "w") as handle:
        handle.attrs["feature_set"] = spec.name
        handle.attrs["complete"] = False
        handle.create_dataset(H5_IDS, data=np.array(videos, dtype=h5py.string_dtype()))
        handle.create_dataset(WRITTEN, shape=(len(videos),), dtype=bool)
        for modality in spec.modalities:
            handle.create_dataset(
                modality.key,
                shape=(len(videos), *modality.shape),
                dtype=np.float32,
                chunks=(1, *modality.shape),
            )


def _resumable(path: Path, spec: FeatureSet, videos: list[str]) -> bool:
    """Whether a partial pack can be continued: readable, same feature set and videos."""
    try:
        with h5py.File(path, "r") as handle:
            stored = [v.decode() for v in handle[H5_IDS][()]]
            handle[WRITTEN][()]
            return handle.attrs.get("feature_set") == spec.name and stored == videos
    except (OSError, KeyError, ValueError):
        return False


def _store_bytes(spec: FeatureSet, videos: int) -> int:
    """The float32 payload of a packed store (HDF5 overhead is small beside it)."""
    per_video = sum(4 * int(np.prod(m.shape)) for m in spec.modalities)
    return videos * per_video


def pack(
    root: Path,
    out: Path,
    *,
    feature_set: str | None = None,
    resume: bool = False,
    on_missing: str = "error",
    progress: bool = True,
) -> Path:
    """Pack ``root``'s npy features into ``out``; returns ``out``."""
    root, out = Path(root), Path(out)
    spec = get_feature_set(feature_set) if feature_set else complete_feature_set(root)
    store = NpyStore(root, spec)
    videos = videos_to_pack(store, on_missing=on_missing)
    if not videos:
        raise FeatureError(f"{root}: no videos to pack")
    partial = out.with_name(out.name + ".partial")
    resuming = resume and partial.exists() and _resumable(partial, spec, videos)
    if resume and partial.exists() and not resuming:
        print(
            f"warning: {partial} cannot be resumed (damaged or another list of videos); "
            "packing from the start",
            file=sys.stderr,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    needed = _store_bytes(spec, len(videos)) - (partial.stat().st_size if resuming else 0)
    free = shutil.disk_usage(out.parent).free
    if needed > free:
        raise FeatureError(
            f"{out}: packing {len(videos)} videos needs about {needed / 2**30:.2f} GiB, "
            f"{out.parent} has {free / 2**30:.2f} GiB free"
        )
    if not resuming:
        _create(partial, spec, videos)
    with h5py.File(partial, "r+") as handle:
        todo = np.flatnonzero(~handle[WRITTEN][()])
        with progress_bar(
            f"packing {spec.name} → {out.name}", total=len(videos), enabled=progress
        ) as bar:
            bar.advance(len(videos) - len(todo))
            for start in range(0, len(todo), CHUNK):
                rows = todo[start : start + CHUNK]
                arrays = [store.read(videos[row]) for row in rows]
                for key in spec.keys:
                    block = np.stack([a[key] for a in arrays])
                    if np.all(np.diff(rows) == 1):
                        handle[key][rows[0] : rows[-1] + 1] = block
                    else:
                        for row, array in zip(rows, block, strict=True):
                            handle[key][row] = array
                handle[WRITTEN][rows] = True
                handle.flush()
                bar.advance(len(rows))
        handle.attrs["complete"] = True
    partial.replace(out)
    return out
