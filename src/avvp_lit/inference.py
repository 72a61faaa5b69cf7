"""Running a trained network over videos: the one inference loop, and the protocol's
binary decisions from its probabilities.

``open_source`` resolves an input (a dataset folder with its split file, a folder of
``.npy`` features without annotations, or an HDF5 store) to a feature store and the
videos to run; ``run_network`` batches them through a network in eval mode without
gradients, skipping (and naming) unreadable videos; ``binarize_time_major`` applies the
evaluation protocol's gating and thresholds. ``avvp-parse``, the figures callback and
the notebooks all use these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avvp_lit.classes import PREDICTION_KEYS, PREDICTION_SHAPES
from avvp_lit.data.annotations import SPLIT_FILES, feature_id, read_weak_labels
from avvp_lit.data.features import FEATURE_SETS, FeatureError, FeatureSet
from avvp_lit.data.stores import FeatureStore, h5_file, open_store
from avvp_lit.metrics import binarize, resolve_thresholds
from avvp_lit.models.output import MAP_KEYS, NETWORK_INPUTS
from avvp_lit.utils.errors import ConfigError, one_line
from avvp_lit.utils.progress import progress_bar

READ_ERRORS = (FeatureError, OSError, EOFError, ValueError)


def protocol_thresholds(metrics: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The video (25,) and segment (2, 25) thresholds of a metrics config or protocol."""
    return resolve_thresholds(
        video_threshold=metrics.get("video_threshold", 0.5),
        segment_threshold=metrics.get("segment_threshold", 0.5),
        class_thresholds=metrics.get("class_thresholds"),
    )


def binarize_time_major(
    probabilities: Mapping[str, Any], metrics: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's binary predictions, (N, 10, 25) time-major bool audio and visual.

    ``probabilities`` holds ``global_prob``, ``a_prob``, ``v_prob`` (N, 25) and
    ``frame_prob`` (N, 10, 2, 25); ``metrics`` the gating and thresholds
    (``gating``, ``video_threshold``, ``segment_threshold``, ``class_thresholds``).
    """
    video_thr, segment_thr = protocol_thresholds(metrics)
    pred_audio, pred_visual = binarize(
        *(torch.as_tensor(probabilities[k]) for k in ("global_prob", "a_prob", "v_prob")),
        torch.as_tensor(probabilities["frame_prob"]),
        gating=metrics.get("gating", "global"),
        video_threshold=video_thr,
        segment_threshold=segment_thr,
    )
    return (
        pred_audio.transpose(1, 2).cpu().numpy(),
        pred_visual.transpose(1, 2).cpu().numpy(),
    )


@dataclass(frozen=True)
class Source:
    """The videos to parse and where their features are.

    ``filenames`` are what the output names (full LLP filenames for a dataset split,
    feature ids otherwise); ``ids`` the matching feature ids; ``mode`` ``dataset`` or
    ``features``.
    """

    store: FeatureStore
    filenames: list[str]
    ids: list[str]
    mode: str


def without_labels(feature_set: FeatureSet) -> FeatureSet:
    """The feature set without its pseudo labels: new videos have none, networks need none."""
    return replace(
        feature_set, modalities=tuple(m for m in feature_set.modalities if not m.is_label)
    )


def detect_input_feature_set(root: Path) -> str:
    """The feature set whose network-input folders all exist under ``root``."""
    found = [
        name
        for name, spec in FEATURE_SETS.items()
        if all((root / m.folder).is_dir() for m in without_labels(spec).modalities)
    ]
    if len(found) != 1:
        raise ConfigError(
            f"input={root}: cannot tell the feature set from its folders "
            f"(found {found or 'none'}); name it: feature_set=han or feature_set=valor"
        )
    return found[0]


def _ids_in_folders(root: Path, feature_set: FeatureSet) -> list[str]:
    """Every id with a ``.npy`` file in any input folder, so partial videos get reported."""
    ids: set[str] = set()
    for modality in feature_set.modalities:
        folder = root / modality.folder
        if folder.is_dir():
            ids.update(path.stem for path in folder.glob("*.npy"))
    return sorted(ids)


def open_source(
    input_path: str | Path,
    *,
    split: str,
    feature_set: str | None,
    store_kind: str = "auto",
) -> Source:
    """Resolve ``input`` to a feature store and the list of videos to parse."""
    if split not in SPLIT_FILES:
        raise ConfigError(f"split={split!r} is not allowed; choose one of {', '.join(SPLIT_FILES)}")
    root = Path(input_path)
    if not root.exists():
        raise ConfigError(f"input={root}: no such file or folder")
    try:
        is_h5 = h5_file(root, store_kind) is not None
        if feature_set is None and not is_h5:
            feature_set = detect_input_feature_set(root)
        store = open_store(root, feature_set, store_kind)
    except FeatureError as error:
        raise ConfigError(f"input={root}: {error}") from None
    store.feature_set = without_labels(store.feature_set)
    if not is_h5:
        absent = [m.folder for m in store.feature_set.modalities if not (root / m.folder).is_dir()]
        if absent:
            raise ConfigError(
                f"input={root}: no {', '.join(absent)} folder for {store.feature_set.name} "
                "features (is feature_set right?)"
            )
    split_file = root / SPLIT_FILES[split]
    if root.is_dir() and split_file.is_file():
        filenames = read_weak_labels(split_file).filenames
        return Source(store, filenames, [feature_id(n) for n in filenames], "dataset")
    ids = sorted(store.ids()) if is_h5 else _ids_in_folders(root, store.feature_set)
    return Source(store, list(ids), list(ids), "features")


@dataclass(frozen=True)
class Parsed:
    """What a parse produced: the parsed videos' names and probabilities, and the skipped.

    ``probabilities`` maps ``global_prob``, ``a_prob``, ``v_prob`` (N, 25) and
    ``frame_prob`` (N, 10, 2, 25) to float32 arrays; ``skipped`` maps a filename to why.
    """

    filenames: list[str]
    probabilities: dict[str, np.ndarray]
    skipped: dict[str, str]


def _batches(source: Source, batch_size: int, skipped: dict[str, str]) -> Iterator[tuple]:
    """Batches of (filenames, {key: (B, ...) float32}); unreadable videos go to ``skipped``."""
    names: list[str] = []
    arrays: list[dict[str, np.ndarray]] = []
    for name, video in zip(source.filenames, source.ids, strict=True):
        try:
            arrays.append(source.store.read(video))
            names.append(name)
        except READ_ERRORS as error:
            skipped[name] = one_line(error)
        if len(names) == batch_size:
            yield names, _stack(arrays)
            names, arrays = [], []
    if names:
        yield names, _stack(arrays)


def _stack(arrays: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.stack([a[key] for a in arrays])) for key in arrays[0]}


@torch.no_grad()
def run_network(
    network: nn.Module,
    source: Source,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
) -> Parsed:
    """The network's probabilities for every readable video of ``source``, in its order."""
    network = network.to(device).eval()
    skipped: dict[str, str] = {}
    names: list[str] = []
    outputs: dict[str, list[np.ndarray]] = {k: [] for k in PREDICTION_KEYS}
    with progress_bar("parsing", total=len(source.filenames), enabled=progress) as bar:
        for batch_names, batch in _batches(source, batch_size, skipped):
            output = network(*(batch[k].to(device) for k in NETWORK_INPUTS))
            for key, values in outputs.items():
                values.append(getattr(output, key).float().cpu().numpy())
            names += batch_names
            bar.advance(len(batch_names))
    probabilities = {
        k: np.concatenate(v) if v else np.zeros((0, *PREDICTION_SHAPES[k]), np.float32)
        for k, v in outputs.items()
    }
    return Parsed(names, probabilities, skipped)


@torch.no_grad()
def forward_eval(network: nn.Module, inputs: Mapping[str, torch.Tensor]) -> Any:
    """The network's output for a batch of ``NETWORK_INPUTS``, in eval mode without
    gradients; the network's training mode is restored afterwards."""
    was_training = network.training
    network.eval()
    try:
        return network(*(inputs[k] for k in NETWORK_INPUTS))
    finally:
        network.train(was_training)


def stack_videos(arrays: Sequence[Mapping[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Per-video feature arrays stacked into a batch (B, ...) per key."""
    return _stack(list(arrays))


def mean_attention(attn_maps: Mapping[str, torch.Tensor] | None) -> dict[str, np.ndarray] | None:
    """Each (B, 10, 25, 25) SECM map averaged over videos and seconds to (25, 25)."""
    if not attn_maps:
        return None
    return {
        key: attn_maps[key].detach().float().mean(dim=(0, 1)).cpu().numpy()
        for key in MAP_KEYS
        if key in attn_maps
    }
