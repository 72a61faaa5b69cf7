"""Validate a dataset folder and count the quirks of its annotation files.

The released LLP files parse, but carry quirks a loader must survive: dense rows whose
filename matches no video, empty (onset == offset) or reversed intervals, overlapping or
touching intervals of one class, dense classes outside the weak labels, duplicate rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from avvp_lit.classes import CLASSES
from avvp_lit.data.annotations import (
    AUDIO_LABEL_FILES,
    SPLIT_FILES,
    VISUAL_LABEL_FILE,
    DenseLabels,
    WeakLabels,
    annotation_path,
    md5sum,
    read_dense_labels,
    read_weak_labels,
)

EXAMPLES = 3


@dataclass
class Quirk:
    """One kind of irregularity in one file: how many rows, and a few examples."""

    file: str
    name: str
    count: int
    examples: list[str] = field(default_factory=list)


@dataclass
class DatasetReport:
    root: Path
    splits: dict[str, dict] = field(default_factory=dict)
    dense_files: dict[str, dict] = field(default_factory=dict)
    quirks: list[Quirk] = field(default_factory=list)

    def count(self, file: str, name: str) -> int:
        return sum(q.count for q in self.quirks if q.file == file and q.name == name)


def _row_text(dense: DenseLabels, i: int) -> str:
    return (
        f"line {dense.line[i]}: {dense.filenames[i]} {dense.onset[i]:g}-{dense.offset[i]:g} "
        f"{CLASSES[dense.label[i]]}"
    )


def _quirk(dense: DenseLabels, name: str, mask: np.ndarray) -> Quirk:
    rows = np.flatnonzero(mask)
    return Quirk(dense.path.name, name, len(rows), [_row_text(dense, i) for i in rows[:EXAMPLES]])


def _overlapping(dense: DenseLabels, valid: np.ndarray) -> np.ndarray:
    """Rows overlapping or touching an earlier-starting interval of one video and class."""
    frame = pd.DataFrame(
        {
            "video": dense.filenames,
            "label": dense.label,
            "onset": dense.onset,
            "offset": dense.offset,
        }
    )[valid].sort_values(["video", "label", "onset"], kind="stable")
    groups = ["video", "label"]
    reach = frame.assign(reach=frame.groupby(groups)["offset"].cummax()).groupby(groups)["reach"]
    previous_reach = reach.shift()
    mask = np.zeros(len(dense), dtype=bool)
    mask[frame.index[(frame["onset"] <= previous_reach).to_numpy()]] = True
    return mask


def dense_quirks(dense: DenseLabels, weak_by_name: dict[str, np.ndarray]) -> list[Quirk]:
    """Quirks of one dense file against the weak labels of the val and test videos."""
    matched = np.array([name in weak_by_name for name in dense.filenames], dtype=bool)
    empty = dense.onset == dense.offset
    reversed_ = dense.onset > dense.offset
    valid = matched & ~empty & ~reversed_
    outside_weak = np.array(
        [
            bool(m) and weak_by_name[name][label] == 0
            for name, label, m in zip(dense.filenames, dense.label, matched, strict=True)
        ]
    )
    keys = list(zip(dense.filenames, dense.onset, dense.offset, dense.label, strict=True))
    seen: set[tuple] = set()
    duplicate = np.zeros(len(dense), dtype=bool)
    for i, key in enumerate(keys):
        duplicate[i] = key in seen
        seen.add(key)
    return [
        _quirk(dense, "rows matching no video", ~matched),
        _quirk(dense, "onset == offset (marks nothing)", empty),
        _quirk(dense, "onset > offset (marks nothing)", reversed_),
        _quirk(
            dense,
            "overlapping or touching intervals of one class",
            _overlapping(dense, valid & ~duplicate),
        ),
        _quirk(dense, "dense classes absent from the weak labels", outside_weak),
        _quirk(dense, "duplicate rows", duplicate),
    ]


def _split_summary(weak: WeakLabels) -> dict:
    per_video = weak.labels.sum(axis=1).astype(int)
    counts = np.bincount(per_video)
    return {
        "file": weak.path.name,
        "md5": md5sum(weak.path),
        "videos": len(weak.filenames),
        "labels_per_video": {int(k): int(v) for k, v in enumerate(counts) if v},
    }


def check_dataset(root: Path) -> DatasetReport:
    """Parse every annotation file of ``root`` (raising on bad input) and count its quirks."""
    root = Path(root)
    report = DatasetReport(root=root)
    weak_by_name: dict[str, np.ndarray] = {}
    for split, name in SPLIT_FILES.items():
        weak = read_weak_labels(annotation_path(root, name))
        report.splits[split] = _split_summary(weak)
        if split != "train":
            weak_by_name.update(zip(weak.filenames, weak.labels, strict=True))
    for key, name in [
        *((f"audio ({k})", v) for k, v in AUDIO_LABEL_FILES.items()),
        ("visual", VISUAL_LABEL_FILE),
    ]:
        path = root / name
        if not path.is_file():
            report.dense_files[key] = {"file": name, "missing": True}
            continue
        dense = read_dense_labels(path)
        report.dense_files[key] = {
            "file": name,
            "md5": md5sum(path),
            "rows": len(dense),
            "released": dense.released,
        }
        report.quirks.extend(dense_quirks(dense, weak_by_name))
    return report
