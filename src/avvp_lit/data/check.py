"""`avvp-data check ROOT`: validate a dataset folder and report its quirks.

The released LLP files parse, but carry quirks a loader must survive: dense rows whose
filename matches no video, empty (onset == offset) or reversed intervals, overlapping or
touching intervals of one class, dense classes outside the weak labels, duplicate rows.
:func:`check_dataset` counts them; :func:`check_features` opens and validates every
feature array of every listed video (shape, dtype, finiteness, pseudo labels 0/1; with a
progress bar) and finds videos listed in two splits; :func:`run_check` prints both and
says whether the folder is usable.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

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
    shared_videos,
    split_feature_ids,
)
from avvp_lit.data.features import FEATURE_SETS, FeatureError
from avvp_lit.data.pack import complete_feature_set
from avvp_lit.data.stores import H5_FILENAME, FeatureStore, open_store
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.utils.errors import first_names
from avvp_lit.utils.progress import progress_bar

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


BAD_SHOWN = 10


def _open_feature_store(root: Path) -> FeatureStore | str:
    """The folder's store, or a sentence saying why there is none."""
    if (root / H5_FILENAME).is_file():
        return open_store(root, None, "h5")
    try:
        return open_store(root, complete_feature_set(root).name, "npy")
    except FeatureError:
        pass
    for spec in FEATURE_SETS.values():
        present = [m.folder for m in spec.modalities if (root / m.folder).is_dir()]
        if present:
            absent = [m.folder for m in spec.modalities if m.folder not in present]
            raise FeatureError(
                f"{root}: incomplete {spec.name} feature layout: missing "
                f"{', '.join(absent)} (present: {', '.join(present)})"
            )
    return "no feature store found (annotations only)"


def check_features(root: Path, *, progress: bool = True) -> tuple[list[tuple[str, str]], list[str]]:
    """Open and validate every feature array of every listed video (shape, dtype,
    finiteness, pseudo labels 0/1). Returns report rows and the problems found."""
    store = _open_feature_store(root)
    if isinstance(store, str):
        return [("features", store)], []
    rows = [("feature store", f"{store.feature_set.name} at {store.location}")]
    problems: list[str] = []
    splits = split_feature_ids(root)
    available = store.ids()
    present = {split: [v for v in ids if v in available] for split, ids in splits.items()}
    for split, ids in splits.items():
        missing = [v for v in ids if v not in available]
        text = f"{len(ids) - len(missing)}/{len(ids)} videos present"
        if missing:
            text += f"; missing {len(missing)}: {first_names(missing, BAD_SHOWN)}"
            problems.append(f"{split}: {len(missing)} videos without features")
        rows.append((f"features {split}", text))
    videos = list(dict.fromkeys(v for ids in present.values() for v in ids))
    bad: list[str] = []
    with progress_bar("reading features", total=len(videos), enabled=progress) as bar:
        for video in videos:
            try:
                store.read(video)
            except FeatureError as error:
                bad.append(str(error))
            bar.advance()
    rows.append(("feature files read", f"{len(videos) - len(bad)}/{len(videos)} valid"))
    for text in bad[:BAD_SHOWN]:
        rows.append(("bad feature", text))
    if len(bad) > BAD_SHOWN:
        rows.append(("bad feature", f"... and {len(bad) - BAD_SHOWN} more"))
    if bad:
        problems.append(f"{len(bad)} videos with unreadable or invalid features")
    for (a, b), shared in shared_videos(splits).items():
        rows.append((f"shared {a}/{b}", f"{len(shared)} videos: {first_names(shared, BAD_SHOWN)}"))
        problems.append(f"{len(shared)} videos in both {a} and {b}")
    return rows, problems


def print_report(report: DatasetReport, console: Console) -> None:
    splits = Table(title=f"LLP annotations in {report.root}")
    for column in ("split", "file", "videos", "labels per video", "md5"):
        splits.add_column(column)
    for split, info in report.splits.items():
        spread = ", ".join(f"{k}: {v}" for k, v in info["labels_per_video"].items())
        splits.add_row(split, info["file"], str(info["videos"]), spread, info["md5"])
    console.print(splits)
    dense = Table(title="dense label files")
    for column in ("labels", "file", "rows", "md5"):
        dense.add_column(column)
    for key, info in report.dense_files.items():
        if info.get("missing"):
            dense.add_row(key, info["file"], "absent", "")
        else:
            note = " (released)" if info["released"] else ""
            dense.add_row(key, info["file"], str(info["rows"]), info["md5"] + note)
    console.print(dense)
    quirks = Table(title="quirks (rows)")
    for column in ("file", "quirk", "count", "examples"):
        quirks.add_column(column)
    for quirk in report.quirks:
        quirks.add_row(quirk.file, quirk.name, str(quirk.count), "\n".join(quirk.examples))
    console.print(quirks)


def run_check(
    root: Path, *, console: Console, json_path: Path | None = None, progress: bool = True
) -> list[str]:
    """Check ``root``'s annotations and features, print the report (and write it as JSON
    when asked); returns the problems that make the folder unusable (none: it is fine)."""
    report = check_dataset(root)
    feature_rows, problems = check_features(root, progress=progress)
    print_report(report, console)
    for name, text in feature_rows:
        console.print(f"{name}: {text}", highlight=False, soft_wrap=True)
    if json_path is not None:
        payload = asdict(report)
        payload["root"] = str(report.root)
        payload["features"] = [list(row) for row in feature_rows]
        payload["problems"] = problems
        atomic_write_bytes(json_path, json.dumps(payload, indent=2).encode())
    return problems
