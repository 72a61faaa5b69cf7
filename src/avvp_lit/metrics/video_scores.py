"""Per-video scores as a file: what a paired comparison needs from a finished run.

Every reported number is a mean over videos of a per-video score, so a run that keeps
its per-video scores can be compared with any other run on the same split, anywhere
(``avvp-report`` on a sweep copied back from a cluster). The file is tab-separated
text: a header ``filename`` + ``METRIC_NAMES``, then one row per video in split order,
scores in percent. ``avvp-train``/``avvp-evaluate`` write it as ``video_scores.tsv``;
``avvp-eval --per-video FILE`` writes the same format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from avvp_lit.metrics.functional import METRIC_NAMES
from avvp_lit.utils.atomic import atomic_write_bytes

VIDEO_SCORES_FILE = "video_scores.tsv"
HEADER = ("filename", *METRIC_NAMES)


def write_video_scores(path: Path, percent: ArrayLike, filenames: Sequence[str]) -> None:
    """Write per-video scores ``percent`` (N, 10) for ``filenames`` (N,), atomically."""
    rows = np.asarray(percent, dtype=np.float64)
    if rows.shape != (len(filenames), len(METRIC_NAMES)):
        raise ValueError(
            f"expected ({len(filenames)}, {len(METRIC_NAMES)}) scores, got {rows.shape}"
        )
    lines = ["\t".join(HEADER)]
    for name, row in zip(filenames, rows.tolist(), strict=True):
        lines.append(name + "\t" + "\t".join(f"{x:.6f}" for x in row))
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode())


class VideoScoresError(ValueError):
    """A per-video scores file that cannot be read; the message names the file and line."""


def read_video_scores(path: Path) -> tuple[list[str], np.ndarray]:
    """The filenames (N,) and per-video scores (N, 10) in percent of a written file."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise VideoScoresError(f"{path}: cannot read ({type(error).__name__})") from None
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise VideoScoresError(f"{path}: line 1 is not the header {' '.join(HEADER)}")
    names, rows = [], []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        try:
            if len(cells) != len(HEADER):
                raise ValueError(f"{len(cells)} fields, expected {len(HEADER)}")
            values = [float(cell) for cell in cells[1:]]
        except ValueError as error:
            raise VideoScoresError(f"{path}: line {number}: {error}") from None
        if not all(0.0 <= v <= 100.0 for v in values):
            raise VideoScoresError(f"{path}: line {number}: a score outside [0, 100]")
        names.append(cells[0])
        rows.append(values)
    if not rows:
        raise VideoScoresError(f"{path}: no videos")
    return names, np.asarray(rows, dtype=np.float64)
