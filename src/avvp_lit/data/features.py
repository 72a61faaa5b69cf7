"""The feature sets users have, declared once: folders, shapes and dtypes per modality.

Every store checks what it reads against these declarations, so a wrong shape, a dtype
that cannot become float32, or NaN/Inf fails with the video and modality named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avvp_lit.classes import NUM_CLASSES, NUM_SEGMENTS
from avvp_lit.utils.errors import InputError


class FeatureError(InputError):
    """A feature array that does not match its declaration, or is missing."""


@dataclass(frozen=True)
class Modality:
    """One per-video array: its batch key, released folder, shape, and whether it is a label.

    Labels (the per-second pseudo labels) hold integers 0/1; features hold real numbers.
    """

    key: str
    folder: str
    shape: tuple[int, ...]
    is_label: bool = False

    def check(self, array: np.ndarray, video: str, source: str = "") -> np.ndarray:
        """Validate one video's array and return it as float32 (labels too)."""
        where = f"video {video!r}, modality {self.key!r} ({self.folder})" + (
            f" in {source}" if source else ""
        )
        array = np.asarray(array)
        if tuple(array.shape) != self.shape:
            raise FeatureError(f"{where}: shape {tuple(array.shape)}, expected {self.shape}")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise FeatureError(f"{where}: dtype {array.dtype} cannot be cast to float32")
        if np.issubdtype(array.dtype, np.complexfloating):
            raise FeatureError(
                f"{where}: dtype {array.dtype} is complex; features must be real numbers "
                "(casting to float32 would drop the imaginary part)"
            )
        out = array.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            bad = int((~np.isfinite(out)).sum())
            raise FeatureError(f"{where}: {bad} NaN/Inf values")
        if self.is_label and not np.isin(out, (0.0, 1.0)).all():
            raise FeatureError(f"{where}: pseudo labels must be 0 or 1")
        return out


@dataclass(frozen=True)
class FeatureSet:
    """A named set of modalities (docs/avvp.md §2)."""

    name: str
    modalities: tuple[Modality, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(m.key for m in self.modalities)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-video shape of every array, by batch key (a batch adds a leading B)."""
        return {m.key: m.shape for m in self.modalities}

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-video shape of each network input (the features, not the pseudo labels)."""
        return {m.key: m.shape for m in self.modalities if not m.is_label}

    @property
    def has_pseudo_labels(self) -> bool:
        return any(m.is_label for m in self.modalities)

    def __getitem__(self, key: str) -> Modality:
        for modality in self.modalities:
            if modality.key == key:
                return modality
        raise KeyError(f"feature set {self.name!r} has no modality {key!r}; it has {self.keys}")


R2PLUS1D = Modality("visual_st", "feats/r2plus1d_18", (NUM_SEGMENTS, 512))

FEATURE_SETS: dict[str, FeatureSet] = {
    "han": FeatureSet(
        "han",
        (
            Modality("audio", "feats/vggish", (NUM_SEGMENTS, 128)),
            Modality("visual", "feats/res152", (8 * NUM_SEGMENTS, 2048)),
            R2PLUS1D,
        ),
    ),
    "valor": FeatureSet(
        "valor",
        (
            Modality("audio", "CLAP/features", (64, 768)),
            Modality("visual", "CLIP/features", (NUM_SEGMENTS, 768)),
            R2PLUS1D,
            Modality("pl_audio", "CLAP/segment_pseudo_labels", (NUM_SEGMENTS, NUM_CLASSES), True),
            Modality("pl_visual", "CLIP/segment_pseudo_labels", (NUM_SEGMENTS, NUM_CLASSES), True),
        ),
    ),
}


def get_feature_set(name: str) -> FeatureSet:
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise FeatureError(
            f"unknown feature set {name!r}; choose one of {sorted(FEATURE_SETS)}"
        ) from None
