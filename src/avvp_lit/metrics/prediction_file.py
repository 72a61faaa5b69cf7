"""The predictions file, `avvp-eval`'s input and every run's ``predictions.npz``: one
writer and one reader, which validates before anything is scored.

The file is an ``.npz`` of ``filenames`` (N,) strings and ``global_prob``, ``a_prob``,
``v_prob`` (N, 25) and ``frame_prob`` (N, 10, 2, 25) (modality 0 audio, 1 visual), one
row per video in any order. It is read without unpickling anything; bad input is a
:class:`PredictionFileError` naming the file, the field and the videos.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avvp_lit.classes import PREDICTION_KEYS, PREDICTION_MAX, PREDICTION_SHAPES
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.utils.errors import InputError, first_names

SHOWN = 5
ROUNDING = 1e-5  # tolerated excess over a probability's bound


class PredictionFileError(InputError):
    """A predictions file that cannot be scored; the message names the file and field."""


def write_predictions(path: Path, filenames: list[str], predictions: dict[str, np.ndarray]) -> None:
    """``predictions.npz`` in the `avvp-eval` format (``filenames`` + the four arrays)."""
    buffer = io.BytesIO()
    arrays = {key: predictions[key].astype(np.float32) for key in PREDICTION_KEYS}
    np.savez_compressed(buffer, filenames=np.asarray(filenames), **arrays)
    atomic_write_bytes(path, buffer.getvalue())


FIELDS = ("filenames", *PREDICTION_SHAPES)


def _read_fields(path: Path) -> dict[str, np.ndarray]:
    """The five arrays of a predictions file, read without unpickling anything."""
    if not path.is_file():
        raise PredictionFileError(f"{path}: predictions file not found")
    if not zipfile.is_zipfile(path):
        raise PredictionFileError(f"{path}: not a readable .npz file (not a zip archive)")
    fields = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in FIELDS if name not in archive.files]
            if missing:
                raise PredictionFileError(
                    f"{path}: missing field(s) {', '.join(missing)}; a predictions file holds "
                    f"{', '.join(FIELDS)}"
                )
            for name in FIELDS:
                try:
                    fields[name] = archive[name]
                except ValueError as error:
                    raise PredictionFileError(
                        f"{path}: field '{name}' is stored as Python objects; save it as a "
                        "plain numpy array (strings: np.asarray(names, dtype=str))"
                    ) from error
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise PredictionFileError(f"{path}: not a readable .npz file ({error})") from error
    return fields


def load_predictions(path: Path) -> dict[str, np.ndarray]:
    """Read and validate a predictions file: fields, dtypes, shapes, probability range.

    Returns ``filenames`` (N,) str and the four probability arrays, in file order.
    """
    fields = _read_fields(path)
    filenames = fields["filenames"]
    if filenames.ndim != 1 or filenames.dtype.kind not in "US":
        raise PredictionFileError(
            f"{path}: field 'filenames' must be a 1-D string array, "
            f"got dtype {filenames.dtype} shape {filenames.shape}"
        )
    fields["filenames"] = filenames.astype(str)
    count = len(filenames)
    if count == 0:
        raise PredictionFileError(f"{path}: holds no videos (field 'filenames' is empty)")
    for name, tail in PREDICTION_SHAPES.items():
        _check_probabilities(path, name, fields[name], (count, *tail), fields["filenames"])
    return fields


def _check_probabilities(
    path: Path, name: str, value: np.ndarray, shape: tuple[int, ...], filenames: np.ndarray
) -> None:
    if value.shape != shape:
        raise PredictionFileError(
            f"{path}: field '{name}' has shape {value.shape}, expected {shape} "
            f"({len(filenames)} videos as in 'filenames')"
        )
    if value.dtype.kind != "f":
        raise PredictionFileError(f"{path}: field '{name}' has dtype {value.dtype}, expected float")
    top = PREDICTION_MAX[name]
    # sums of float32 products can round a hair past their bound (a_prob: 1.0000001)
    bad = ~(np.isfinite(value) & (value >= 0.0) & (value <= top + ROUNDING))
    bad_videos = np.flatnonzero(bad.reshape(len(value), -1).any(axis=1))
    if len(bad_videos):
        examples = [f"{filenames[i]} ({value[i][bad[i]].flat[0]:g})" for i in bad_videos[:SHOWN]]
        raise PredictionFileError(
            f"{path}: field '{name}' has values outside [0, {top:g}] (or not finite) in "
            f"{len(bad_videos)} video(s): {first_names(examples, SHOWN, len(bad_videos))}"
        )


def align_to_split(path: Path, names: np.ndarray, split_names: Sequence[str]) -> np.ndarray:
    """Row order that puts the predictions in split-file order; missing/extra/duplicated
    videos are errors."""
    names = [str(n) for n in names]
    positions: dict[str, int] = {}
    duplicated = []
    for row, name in enumerate(names):
        if name in positions:
            duplicated.append(name)
        positions[name] = row
    if duplicated:
        raise PredictionFileError(
            f"{path}: field 'filenames' lists {len(duplicated)} video(s) more than once: "
            f"{first_names(duplicated)}"
        )
    wanted = set(split_names)
    missing = [name for name in split_names if name not in positions]
    extra = [name for name in names if name not in wanted]
    problems = []
    if missing:
        problems.append(f"lacks {len(missing)} video(s) of the split: {first_names(missing)}")
    if extra:
        problems.append(f"has {len(extra)} video(s) not in the split: {first_names(extra)}")
    if problems:
        raise PredictionFileError(f"{path}: field 'filenames' " + "; ".join(problems))
    return np.array([positions[name] for name in split_names], dtype=np.int64)
