"""Label statistics of a real LLP annotation folder: what the synthetic generator imitates.

``compute_llp_statistics(root)`` reads the released annotation files and summarises
their label structure as plain JSON-able numbers (counts, not probabilities, so that
sample sizes stay visible):

- video level (train, and val+test together as ``eval``): classes per video, class
  counts, class co-occurrence (25 x 25, diagonal = class counts) and the distribution of
  label sets, which implies all three;
- event level (val+test dense labels, rasterised per second): for every (video, class)
  with a dense annotation in either modality, whether it is audio-only, visual-only or
  audio-visual; per class how many audio/visual events cover all 10 seconds; per run (a
  maximal block of consecutive positive seconds) onset and duration histograms; runs
  per (video, class, modality); per class how often an audio-visual event's audio and
  visual seconds coincide; and the histogram of the per-second patterns of events that do not
  cover the whole video.

The generator samples from the embedded copy (``avvp_lit/resources/llp_stats.json``);
``avvp-data stats ROOT OUT.json`` recomputes it.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from avvp_lit.classes import CLASSES, MODALITIES, NUM_CLASSES, NUM_SEGMENTS
from avvp_lit.data.annotations import (
    AUDIO_LABEL_FILES,
    FULL_FILE,
    SPLIT_FILES,
    VISUAL_LABEL_FILE,
    load_split,
    md5sum,
)
from avvp_lit.utils.atomic import atomic_write_bytes

STATS_FORMAT = 1
EVENT_TYPES = ("audio_only", "visual_only", "audio_visual")
STATS_RESOURCE = ("resources", "llp_stats.json")


def load_embedded_statistics() -> dict[str, Any]:
    """The statistics shipped with the package (computed once from the real LLP files)."""
    path = resources.files("avvp_lit").joinpath(*STATS_RESOURCE)
    return json.loads(path.read_text(encoding="utf-8"))


def pattern_string(seconds: np.ndarray) -> str:
    """A per-second 0/1 vector (10,) as a string, second 0 first: ``"0011100000"``."""
    return "".join("1" if s else "0" for s in np.asarray(seconds).astype(bool))


def parse_pattern(text: str) -> np.ndarray:
    """Inverse of ``pattern_string``: a bool vector (10,)."""
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8) == ord("1")


def positive_runs(active: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Maximal runs of ``True`` along the last axis of a bool array (..., T).

    Returns the leading indices of each run (one array per leading axis), its start
    and its end (exclusive), in C order of (leading indices, start).
    """
    active = np.asarray(active, dtype=bool)
    padding = [(0, 0)] * (active.ndim - 1) + [(1, 1)]
    steps = np.diff(np.pad(active.astype(np.int8), padding), axis=-1)
    *lead, start = np.nonzero(steps == 1)
    *_, end = np.nonzero(steps == -1)
    return tuple(lead), start, end


def run_bounds(active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of positive seconds in binary timelines.

    ``active`` (E, 10). Returns (row, onset, duration) per run, each (R,) int64, runs
    ordered by row then onset.
    """
    (rows,), onsets, offsets = positive_runs(active)
    return rows, onsets, offsets - onsets


def _label_sets(weak: np.ndarray) -> list[list[Any]]:
    """``[[count, [class indices]], ...]``, most frequent first, ties by class indices."""
    counter = Counter(tuple(int(c) for c in np.flatnonzero(row)) for row in weak)
    ordered = sorted(counter.items(), key=lambda item: (-item[1], len(item[0]), item[0]))
    return [[count, list(classes)] for classes, count in ordered]


def video_statistics(weak: np.ndarray) -> dict[str, Any]:
    """Video-level label structure of multi-hot weak labels (N, 25)."""
    w = np.asarray(weak) > 0
    per_video = w.sum(1)
    w_int = w.astype(np.int64)
    return {
        "videos": int(len(w)),
        "classes_per_video": np.bincount(per_video).tolist(),
        "class_counts": w.sum(0).tolist(),
        "cooccurrence": (w_int.T @ w_int).tolist(),
        "label_sets": _label_sets(w),
    }


def event_statistics(gt_audio: np.ndarray, gt_visual: np.ndarray) -> dict[str, Any]:
    """Event-level structure of per-second ground truth (N, 10, 25) for audio and visual.

    An *event* is one (video, class, modality) with at least one positive second.
    """
    timelines = {
        "audio": np.asarray(gt_audio).astype(bool).transpose(0, 2, 1),  # (N, 25, 10)
        "visual": np.asarray(gt_visual).astype(bool).transpose(0, 2, 1),
    }
    present = {m: t.any(-1) for m, t in timelines.items()}  # (N, 25)
    audio, visual = present["audio"], present["visual"]
    modality_counts = np.stack(
        [(audio & ~visual).sum(0), (visual & ~audio).sum(0), (audio & visual).sum(0)], axis=1
    )
    both = audio & visual
    identical = (timelines["audio"] == timelines["visual"]).all(-1) & both
    out: dict[str, Any] = {
        "event_types": list(EVENT_TYPES),
        "modality_counts": modality_counts.tolist(),
        "av_identical": identical.sum(0).tolist(),
        "videos_without": {m: int((~present[m].any(1)).sum()) for m in MODALITIES},
    }
    full, runs_hist, onset_hist, duration_hist, patterns = {}, {}, {}, {}, {}
    for modality, timeline in timelines.items():
        whole = timeline.all(-1)
        full[modality] = whole.sum(0).tolist()
        events = timeline[present[modality]]  # (E, 10)
        rows, onsets, durations = run_bounds(events)
        runs_hist[modality] = np.bincount(np.bincount(rows, minlength=len(events))).tolist()
        onset_hist[modality] = np.bincount(onsets, minlength=NUM_SEGMENTS).tolist()
        duration_hist[modality] = np.bincount(durations - 1, minlength=NUM_SEGMENTS).tolist()
        partial = timeline[present[modality] & ~whole]
        counter = Counter(pattern_string(row) for row in partial)
        ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
        patterns[modality] = [[count, pattern] for pattern, count in ordered]
    out["full_video_counts"] = full
    out["runs_per_event"] = runs_hist
    out["onset_histogram"] = onset_hist
    out["duration_histogram"] = duration_hist
    out["partial_patterns"] = patterns
    return out


def compute_llp_statistics(root: Path, audio_labels: str = "pre2024") -> dict[str, Any]:
    """Statistics of the LLP annotation folder ``root`` (see the module docstring).

    Video-level numbers come from the train split and from val+test (``eval``); event
    numbers from the val+test dense labels (``audio_labels`` picks the audio file).
    """
    root = Path(root)
    splits = {name: load_split(root, name, audio_labels) for name in SPLIT_FILES}
    evaluation = [splits["val"], splits["test"]]
    gt_audio = np.concatenate([s.gt_audio for s in evaluation])
    gt_visual = np.concatenate([s.gt_visual for s in evaluation])
    files = [*SPLIT_FILES.values(), AUDIO_LABEL_FILES[audio_labels], VISUAL_LABEL_FILE]
    if (root / FULL_FILE).is_file():
        files.append(FULL_FILE)
    return {
        "format": STATS_FORMAT,
        "source": {
            "audio_labels": audio_labels,
            "md5": {name: md5sum(root / name) for name in sorted(files)},
            "videos": {name: len(split) for name, split in splits.items()},
        },
        "classes": list(CLASSES),
        "num_segments": NUM_SEGMENTS,
        "videos": {
            "train": video_statistics(splits["train"].weak),
            "eval": video_statistics(np.concatenate([s.weak for s in evaluation])),
        },
        "events": event_statistics(gt_audio, gt_visual),
    }


def _is_flat(value: list[Any]) -> bool:
    return all(not isinstance(v, (list, dict)) for v in value)


def _is_row(value: Any) -> bool:
    """A list printed on one line: scalars only, or a ``[count, [indices]]`` pair."""
    if not isinstance(value, list):
        return False
    return _is_flat(value) or (
        len(value) == 2 and not isinstance(value[0], list) and isinstance(value[1], list)
    )


def dumps(value: Any, indent: int = 0) -> str:
    """JSON with one line per table row: readable and a few KB, unlike ``indent=1``."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and not _is_row(value):
        items = [inner + dumps(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, separators=(",", ":"))


def write_statistics(stats: dict[str, Any], path: Path) -> None:
    atomic_write_bytes(path, (dumps(stats) + "\n").encode())


def write_llp_statistics(root: Path, out: Path, audio_labels: str = "pre2024") -> str:
    """Compute the statistics of ``root``'s annotation files, write them to ``out`` (JSON)
    and return a one-line summary."""
    stats = compute_llp_statistics(root, audio_labels)
    write_statistics(stats, out)
    events = stats["events"]["modality_counts"]
    return (
        f"wrote {out}: {sum(stats['source']['videos'].values())} videos, "
        f"{sum(map(sum, events))} (video, class) events, {NUM_CLASSES} classes"
    )
