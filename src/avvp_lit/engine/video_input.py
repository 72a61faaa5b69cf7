"""Video files as ``avvp-parse`` input: which inputs are videos, and their features,
extracted once through ``avvp-extract``'s pipeline and cached.

The cache key is the file's content (SHA-256), the extraction settings (feature set,
window, precision, the recipe's version) and the weight files' identity
(:meth:`avvp_lit.extract.weights.WeightPaths.identity`), so a second parse of the same file
with the same settings and weights reads the cached arrays, and a changed file, setting or
weight file extracts again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avvp_lit.data.features import FEATURE_SETS, FeatureSet, get_feature_set
from avvp_lit.data.stores import FeatureStore, NpyStore
from avvp_lit.extract.files import VIDEO_SUFFIXES, video_files
from avvp_lit.inference import Source, without_labels
from avvp_lit.utils.errors import ConfigError

# bump when the extraction's numbers change, so old cache entries are not read
RECIPE_VERSION = 1
LIST_SUFFIXES = (".txt", ".lst")
# the top folders of the released feature layouts ("CLIP", "CLAP", "feats")
FEATURE_FOLDERS = sorted(
    {m.folder.split("/")[0] for spec in FEATURE_SETS.values() for m in spec.modalities}
)


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "avvp-lit" / "extract"


def is_video_input(path: Path) -> bool:
    """A video file, a list file of videos, or a folder holding video files (and no
    feature folders)."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES + LIST_SUFFIXES
    if path.is_dir():
        has_videos = any(p.suffix.lower() in VIDEO_SUFFIXES for p in path.iterdir())
        has_features = any((path / d).is_dir() for d in FEATURE_FOLDERS)
        return has_videos and not has_features
    return False


def video_inputs(path: Path) -> list[Path]:
    """The video files of an input: the file, a folder's video files (sorted), or the
    files a list names (one per line, relative to the list; ``#`` starts a comment; a file
    named twice counts once)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        lines = [line.strip() for line in path.read_text().splitlines()]
        return video_files([path.parent / line for line in lines if line and line[0] != "#"])
    return video_files([path])


@dataclass(frozen=True)
class ExtractionKey:
    """What decides a video's features besides its bytes."""

    feature_set: str
    window_s: float
    precision: str
    weights: str

    def of(self, video: Path) -> str:
        digest = hashlib.sha256()
        with open(video, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        settings = json.dumps({**self.__dict__, "recipe": RECIPE_VERSION}, sort_keys=True)
        digest.update(settings.encode())
        return digest.hexdigest()[:32]


def input_names(files: list[Path]) -> dict[Path, tuple[str, str]]:
    """Each file's (name, link): the name its events and page are given, and its path
    under the run's ``videos/`` folder. The name is the stem; where stems repeat (``a/clip.mp4``
    and ``b/clip.mp4``) both are the paths below the files' common folder."""
    stems = Counter(file.stem for file in files)
    real = {f: f.resolve() for f in files}
    common = Path(os.path.commonpath([str(p.parent) for p in real.values()]))
    names = {}
    for file in files:
        if stems[file.stem] == 1:
            names[file] = (file.stem, file.name)
        else:
            relative = real[file].relative_to(common).as_posix()
            names[file] = (relative, relative)
    return names


class _WindowStore(FeatureStore):
    """Windows of many cache entries as one store, each read from its own entry's."""

    def __init__(self, stores: dict[str, FeatureStore], feature_set: FeatureSet) -> None:
        self._stores, self.feature_set = stores, feature_set

    @property
    def location(self) -> str:
        return "the extraction cache"

    def ids(self) -> set[str]:
        return set(self._stores)

    def read(self, video: str) -> dict[str, np.ndarray]:
        return self._stores[video].read(video)

    def _raw(self, video: str, key: str) -> np.ndarray:
        return self.read(video)[key]


def cache_source(windows: dict[Path, list[str]]) -> Source:
    """One source over the windows of many cache entries (entry -> its window ids), so the
    network runs once over every video instead of once per video. Window ids start with
    their entry's name (``fill_cache`` names them so), hence never repeat across entries."""
    feature_set = without_labels(get_feature_set("valor"))
    stores = {entry: NpyStore(entry, feature_set) for entry in windows}
    by_window = {w: stores[entry] for entry, ids in windows.items() for w in ids}
    ids = list(by_window)
    return Source(_WindowStore(by_window, feature_set), ids, ids, "features")


def check_feature_set(name: str | None) -> None:
    """Refuse a checkpoint whose feature set avvp-extract cannot make (before decoding)."""
    if name not in (None, "valor"):
        raise ConfigError(
            f"the checkpoint's model reads {name!r} features; avvp-extract makes the valor "
            "feature set only, so video input needs a checkpoint trained on valor features"
        )
