"""LLP annotation files: parsing, validation and dense-label rasterisation.

A dataset folder holds the released annotation files under their released names
(tab-separated, one header line):

- weak labels ``filename<TAB>event_labels`` per split (``AVVP_train.csv``,
  ``AVVP_val_pd.csv``, ``AVVP_test_pd.csv``), labels comma-separated without spaces;
- dense labels ``filename<TAB>onset<TAB>offset<TAB>event_labels`` (one class per row,
  integer seconds, half-open ``[onset, offset)``) for audio (two versions) and visual.

Dense rows match videos on the FULL filename; features are keyed by its first 11
characters. Rasterisation follows the original evaluation code exactly:
``GT[int(onset):int(offset), class] = 1`` so that ``onset == offset`` marks nothing
and overlapping rows merge.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from avvp_lit.classes import CLASS_INDEX, NUM_CLASSES, NUM_SEGMENTS
from avvp_lit.utils.errors import InputError, first_names

SPLIT_FILES: dict[str, str] = {
    "train": "AVVP_train.csv",
    "val": "AVVP_val_pd.csv",
    "test": "AVVP_test_pd.csv",
}
AUDIO_LABEL_FILES: dict[str, str] = {
    "pre2024": "AVVP_eval_audio_pre2024.csv",
    "current": "AVVP_eval_audio.csv",
}
VISUAL_LABEL_FILE = "AVVP_eval_visual.csv"
FULL_FILE = "AVVP_dataset_full.csv"
WEAK_COLUMNS = ("filename", "event_labels")
DENSE_COLUMNS = ("filename", "onset", "offset", "event_labels")
FEATURE_ID_LENGTH = 11

# The released dense files contain one reversed interval (8DF2PxdT5tE_390_400, Cheering,
# onset 9 offset 0) that the original evaluation turns into an empty slice. It is
# accepted, as the protocol treats it, only in the released files (recognised by md5);
# anywhere else a reversed interval is an error.
RELEASED_DENSE_MD5: frozenset[str] = frozenset(
    {
        "98d8ce2369078d43aa1df26d3ef2894c",  # AVVP_eval_audio.csv
        "a8b6b747e59a4ea2501e51cd717f3b4f",  # AVVP_eval_audio_pre2024.csv
        "3d25e5a6033e2ef7c7e391cfbfdc01f9",  # AVVP_eval_visual.csv
    }
)


class AnnotationError(InputError):
    """Bad annotation input; the message names the file, line and field."""


def feature_id(filename: str) -> str:
    """The key of a video's feature files: the first 11 characters of its filename."""
    return filename[:FEATURE_ID_LENGTH]


@cache
def _md5_cached(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def md5sum(path: Path) -> str:
    """md5 of a file (cached on path, mtime and size)."""
    stat = Path(path).stat()
    return _md5_cached(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


def _error(path: Path, line: int, column: str, problem: str) -> AnnotationError:
    return AnnotationError(f"{path}:{line}: field '{column}': {problem}")


def _decode(path: Path) -> str:
    """The file as UTF-8 text, a leading byte-order mark (spreadsheet exports) dropped;
    other bytes are an error naming the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise AnnotationError(
            f"{path}:{line}: byte {data[error.start]:#04x} is not UTF-8 text (save the file "
            "as UTF-8)"
        ) from None


def _read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a tab-separated annotation file as strings, checking header and column counts.
    Cells and header names are stripped of surrounding whitespace.

    Returns a frame with the expected columns plus ``line`` (1-based line number in the file).
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    lines = _decode(path).splitlines()
    if not lines:
        raise AnnotationError(f"{path}:1: empty file, expected header {'<TAB>'.join(columns)}")
    header = tuple(cell.strip() for cell in lines[0].split("\t"))
    if header != columns:
        raise AnnotationError(
            f"{path}:1: header {'<TAB>'.join(header)!r} does not match the expected "
            f"{'<TAB>'.join(columns)!r}"
        )
    rows, numbers = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split("\t")]
        if len(cells) != len(columns):
            raise AnnotationError(
                f"{path}:{number}: expected {len(columns)} tab-separated columns "
                f"({', '.join(columns)}), found {len(cells)}"
            )
        rows.append(cells)
        numbers.append(number)
    frame = pd.DataFrame(rows, columns=list(columns), dtype=str)
    frame["line"] = np.asarray(numbers, dtype=np.int64)
    return frame


def _class_indices(path: Path, names: pd.Series, lines: pd.Series) -> np.ndarray:
    indices = names.map(CLASS_INDEX)
    unknown = indices.isna().to_numpy()
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        raise _error(
            path,
            int(lines.iloc[first]),
            "event_labels",
            f"unknown class {names.iloc[first]!r}; classes are the 25 LLP names "
            "(see avvp_lit.classes.CLASSES)",
        )
    return indices.to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class WeakLabels:
    """One split's video-level labels, in file order.

    ``labels`` is (N, 25) float32 multi-hot in the canonical class order.
    """

    path: Path
    filenames: list[str]
    labels: np.ndarray
    lines: np.ndarray


def read_weak_labels(path: Path) -> WeakLabels:
    """Parse a weak-label file, rejecting empty splits, duplicates and unknown classes."""
    path = Path(path)
    frame = _read_table(path, WEAK_COLUMNS)
    if frame.empty:
        raise AnnotationError(f"{path}: the split is empty (a header and no videos)")
    empty_name = frame["filename"].str.strip() == ""
    if empty_name.any():
        raise _error(path, int(frame["line"][empty_name].iloc[0]), "filename", "empty filename")
    duplicated = frame["filename"].duplicated(keep="first")
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        first = int(frame["line"][frame["filename"] == row["filename"]].iloc[0])
        raise _error(
            path,
            int(row["line"]),
            "filename",
            f"video {row['filename']!r} is listed twice in one split (first at line {first})",
        )
    exploded = frame[["line", "event_labels"]].assign(
        event_labels=frame["event_labels"].str.split(",")
    )
    exploded = exploded.explode("event_labels", ignore_index=False)
    names = exploded["event_labels"].str.strip()
    empty = names == ""
    if empty.any():
        raise _error(path, int(exploded["line"][empty].iloc[0]), "event_labels", "empty label")
    classes = _class_indices(path, names, exploded["line"])
    labels = np.zeros((len(frame), NUM_CLASSES), dtype=np.float32)
    labels[exploded.index.to_numpy(), classes] = 1.0
    return WeakLabels(
        path=path,
        filenames=frame["filename"].tolist(),
        labels=labels,
        lines=frame["line"].to_numpy(),
    )


@dataclass(frozen=True)
class DenseLabels:
    """The rows of one dense-label file, validated.

    ``onset``/``offset`` are float seconds; ``label`` the class index; ``line`` the
    1-based line of each row.
    """

    path: Path
    filenames: np.ndarray
    onset: np.ndarray
    offset: np.ndarray
    label: np.ndarray
    line: np.ndarray
    released: bool

    def __len__(self) -> int:
        return len(self.filenames)


def read_dense_labels(path: Path) -> DenseLabels:
    """Parse a dense-label file: unknown class, non-numeric or out-of-range times are errors.

    A reversed interval (onset > offset) is an error except in the released LLP files,
    which contain one that the original evaluation treats as empty.
    """
    path = Path(path)
    frame = _read_table(path, DENSE_COLUMNS)
    lines = frame["line"]
    times = {}
    for column in ("onset", "offset"):
        values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise _error(
                path,
                int(lines.iloc[first]),
                column,
                f"{frame[column].iloc[first]!r} is not a number",
            )
        outside = (values < 0) | (values > NUM_SEGMENTS)
        if outside.any():
            first = int(np.flatnonzero(outside.to_numpy())[0])
            raise _error(
                path,
                int(lines.iloc[first]),
                column,
                f"{values.iloc[first]:g} is outside [0, {NUM_SEGMENTS}] seconds",
            )
        times[column] = values.to_numpy(dtype=np.float64)
    released = md5sum(path) in RELEASED_DENSE_MD5
    reversed_rows = times["onset"] > times["offset"]
    if reversed_rows.any() and not released:
        first = int(np.flatnonzero(reversed_rows)[0])
        raise _error(
            path,
            int(lines.iloc[first]),
            "onset",
            f"onset {times['onset'][first]:g} is after offset {times['offset'][first]:g}",
        )
    labels = _class_indices(path, frame["event_labels"].str.strip(), lines)
    return DenseLabels(
        path=path,
        filenames=frame["filename"].to_numpy(dtype=object),
        onset=times["onset"],
        offset=times["offset"],
        label=labels,
        line=lines.to_numpy(),
        released=released,
    )


def rasterise(dense: DenseLabels, filenames: list[str]) -> np.ndarray:
    """Per-second ground truth (N, 10, 25) uint8 for ``filenames`` from dense rows.

    Follows the original evaluation: ``GT[int(onset):int(offset), class] = 1``; rows whose
    filename matches no video are ignored.
    """
    position = {name: i for i, name in enumerate(filenames)}
    video = np.array([position.get(name, -1) for name in dense.filenames], dtype=np.int64)
    keep = video >= 0
    start = dense.onset[keep].astype(np.int64)
    stop = dense.offset[keep].astype(np.int64)
    seconds = np.arange(NUM_SEGMENTS)
    active = (seconds[None, :] >= start[:, None]) & (seconds[None, :] < stop[:, None])  # (R, 10)
    gt = np.zeros((len(filenames), NUM_SEGMENTS, NUM_CLASSES), dtype=np.uint8)
    rows, secs = np.nonzero(active)
    gt[video[keep][rows], secs, dense.label[keep][rows]] = 1
    return gt


@dataclass(frozen=True)
class SplitAnnotations:
    """Everything the project needs of one split, in the split file's order.

    ``weak`` (N, 25) float32; ``gt_audio``/``gt_visual`` (N, 10, 25) uint8 for val/test,
    ``None`` for train. ``files`` names the annotation files read (for protocol lines).
    """

    split: str
    filenames: list[str]
    weak: np.ndarray
    gt_audio: np.ndarray | None
    gt_visual: np.ndarray | None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def feature_ids(self) -> list[str]:
        return [feature_id(name) for name in self.filenames]

    def __len__(self) -> int:
        return len(self.filenames)


def annotation_path(root: Path, name: str) -> Path:
    path = Path(root) / name
    if not path.is_file():
        raise AnnotationError(
            f"{path}: annotation file not found; a dataset folder holds the LLP annotation "
            f"files under their released names ({', '.join(SPLIT_FILES.values())}, "
            f"{', '.join(AUDIO_LABEL_FILES.values())}, {VISUAL_LABEL_FILE})"
        )
    return path


def _other_eval_videos(root: Path, split: str) -> set[str]:
    """The videos of the other evaluation split (the dense files cover val and test)."""
    other = {"val": "test", "test": "val"}[split]
    path = root / SPLIT_FILES[other]
    return set(read_weak_labels(path).filenames) if path.is_file() else set()


def _check_dense_matches(dense: DenseLabels, weak: WeakLabels, known: set[str]) -> None:
    """No dense row matching the split is an error; rows matching no evaluation video
    are a warning (with counts), except in the released files, which have a few."""
    rows = np.asarray(dense.filenames, dtype=object)
    in_split = np.isin(rows, np.asarray(weak.filenames, dtype=object))
    if len(rows) and len(weak.filenames) and not in_split.any():
        raise AnnotationError(
            f"{dense.path}: none of its {len(rows)} rows names a video of {weak.path} "
            f"(first row: {rows[0]!r}, first video: {weak.filenames[0]!r})"
        )
    if dense.released:
        return
    unmatched = [name for name in rows if name not in known]
    if unmatched:
        shown = first_names(unmatched, 3)
        warnings.warn(
            f"{dense.path}: {len(unmatched)} of {len(rows)} rows match no evaluation video "
            f"({shown}); they are ignored",
            stacklevel=3,
        )


def load_split(root: Path, split: str, audio_labels: str = "pre2024") -> SplitAnnotations:
    """Load one split (``train``, ``val``, ``test``) of a dataset folder.

    ``audio_labels`` picks the audio dense file: ``pre2024`` (every published number) or
    ``current`` (the 2024 correction).
    """
    if split not in SPLIT_FILES:
        raise AnnotationError(f"unknown split {split!r}; choose one of {sorted(SPLIT_FILES)}")
    if audio_labels not in AUDIO_LABEL_FILES:
        raise AnnotationError(
            f"unknown audio labels {audio_labels!r}; choose one of {sorted(AUDIO_LABEL_FILES)}"
        )
    root = Path(root)
    weak = read_weak_labels(annotation_path(root, SPLIT_FILES[split]))
    files = {"split": weak.path}
    gt_audio = gt_visual = None
    if split != "train":
        audio = read_dense_labels(annotation_path(root, AUDIO_LABEL_FILES[audio_labels]))
        visual = read_dense_labels(annotation_path(root, VISUAL_LABEL_FILE))
        known = set(weak.filenames) | _other_eval_videos(root, split)
        for dense in (audio, visual):
            _check_dense_matches(dense, weak, known)
        gt_audio = rasterise(audio, weak.filenames)
        gt_visual = rasterise(visual, weak.filenames)
        files.update(audio=audio.path, visual=visual.path)
    return SplitAnnotations(
        split=split,
        filenames=weak.filenames,
        weak=weak.labels,
        gt_audio=gt_audio,
        gt_visual=gt_visual,
        files=files,
    )


def shared_videos(splits: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], list[str]]:
    """Videos listed in two splits, per pair of splits in the given order (sorted ids):
    a model scored on videos it trained or was selected on reports inflated numbers."""
    names = list(splits)
    shared = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sorted(set(splits[a]) & set(splits[b]))
            if common:
                shared[(a, b)] = common
    return shared


def split_feature_ids(root: Path) -> dict[str, list[str]]:
    """The feature ids of every split file present in ``root`` (weak labels only)."""
    return {
        split: [feature_id(name) for name in read_weak_labels(root / file).filenames]
        for split, file in SPLIT_FILES.items()
        if (root / file).is_file()
    }
