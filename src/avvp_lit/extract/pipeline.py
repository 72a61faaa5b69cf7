"""Video files to the ``valor`` feature set in the released layout (``avvp-extract``).

Files are decoded and prepared in DataLoader workers (:mod:`avvp_lit.extract.inputs`)
while the main process runs the three networks on batches of windows from several videos.
Each array is written atomically; a video counts as done (``extracted.tsv``) only when
all its windows' arrays are in, so ``--resume`` skips exactly the finished videos. A file
that cannot be used is one line in ``skipped.txt``; the others go on.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from avvp_lit.classes import NUM_CLASSES
from avvp_lit.data.annotations import feature_id, read_weak_labels
from avvp_lit.data.features import get_feature_set
from avvp_lit.extract.decode import DecodeError, decode_windows
from avvp_lit.extract.files import video_files
from avvp_lit.extract.inputs import (
    WindowInputs,
    clap_feature_waveform,
    clap_label_waveforms,
    clip_pixels,
    r2plus1d_clips,
)
from avvp_lit.extract.recipe import (
    CLAP_THRESHOLDS,
    CLIP_THRESHOLDS,
    WINDOW_S,
    segment_pseudo_labels,
)
from avvp_lit.utils.atomic import atomic_path, atomic_write_bytes
from avvp_lit.utils.errors import InputError
from avvp_lit.utils.progress import progress_bar

DONE_FILE = "extracted.tsv"
SKIPPED_FILE = "skipped.txt"
WINDOWS_FILE = "windows.tsv"
STAGING = ".npy-staging"
WINDOWS_HEADER = "id\tsource\tstart_s\tend_s\tframes_8fps\tshort\n"
FEATURES = get_feature_set("valor")
INPUT_MODALITIES = [m for m in FEATURES.modalities if not m.is_label]
STAGES = ("load", "decode", "clip", "clap", "r2plus1d", "write")


@dataclass(frozen=True)
class ExtractSettings:
    """How to extract; ``labels``: an ``AVVP_train.csv``-format file of weak labels, which
    turns on the per-second pseudo labels."""

    window_s: float = WINDOW_S
    labels: Path | None = None
    format: str = "npy"
    device: str = "cpu"
    precision: str = "32"
    batch_windows: int = 4
    workers: int = 1
    resume: bool = False


@dataclass
class ExtractResult:
    out: Path
    videos: int = 0
    windows: int = 0
    short: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    resumed: int = 0
    unlabelled: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall_s: float = 0.0


@dataclass
class FileItem:
    source: Path
    windows: list[WindowInputs]
    error: str | None
    decode_s: float


class VideoFiles(Dataset):
    """One item per video file: its windows prepared for the models, or why it cannot be."""

    def __init__(
        self,
        files: list[Path],
        *,
        names: list[str],
        mean: tuple,
        std: tuple,
        chunks: bool,
        window_s: float,
    ) -> None:
        self.files, self.names, self.mean, self.std = files, names, mean, std
        self.chunks, self.window_s = chunks, window_s

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> FileItem:
        source = self.files[index]
        start = time.perf_counter()
        try:
            windows = [
                WindowInputs(
                    id=w.id,
                    source=str(source),
                    start=w.start,
                    end=w.end,
                    frame_count=len(w.frames),
                    clip=clip_pixels(w.frames, self.mean, self.std),
                    r2plus1d=r2plus1d_clips(w.frames),
                    clap=clap_feature_waveform(w.audio),
                    clap_chunks=clap_label_waveforms(w.audio) if self.chunks else None,
                )
                for w in decode_windows(source, self.window_s, name=self.names[index])
            ]
            error = None
        except DecodeError as failure:
            windows, error = [], str(failure)
        return FileItem(source, windows, error, time.perf_counter() - start)


def _one_item(item: FileItem) -> FileItem:
    return item


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


class WeakLabelTable:
    """Weak labels by video: a window is looked up by its id, then by its feature id (the
    first 11 characters, LLP's convention)."""

    def __init__(self, path: Path) -> None:
        weak = read_weak_labels(path)
        self.by_name = dict(zip(weak.filenames, weak.labels, strict=True))
        self.by_id = {feature_id(n): v for n, v in self.by_name.items()}

    def get(self, window_id: str) -> np.ndarray | None:
        found = self.by_name.get(window_id)
        return found if found is not None else self.by_id.get(feature_id(window_id))


def _completed(out: Path) -> dict[str, list[str]]:
    done_file = out / DONE_FILE
    if not done_file.is_file():
        return {}
    done: dict[str, list[str]] = {}
    for line in done_file.read_text().splitlines():
        source, _, ids = line.partition("\t")
        done[source] = ids.split(",") if ids else []
    return done


def _check_names(files: list[Path], names: dict[Path, str]) -> None:
    """Two inputs whose windows would write the same arrays: a named error before decoding."""
    by_name: dict[str, list[Path]] = defaultdict(list)
    for file in files:
        by_name[names[file]].append(file)
    clashes = {n: f for n, f in by_name.items() if len(f) > 1}
    if clashes:
        lines = "; ".join(f"{n!r}: {', '.join(map(str, f))}" for n, f in clashes.items())
        raise InputError(
            f"inputs with the same name would write the same feature files ({lines}); "
            "rename or extract them separately"
        )


def _has_all(root: Path, ids: list[str], with_labels: bool) -> bool:
    keys = FEATURES.modalities if with_labels else INPUT_MODALITIES
    return all((root / m.folder / f"{i}.npy").is_file() for i in ids for m in keys)


class _Models:
    def __init__(self, weights, device: torch.device, precision: str) -> None:
        from avvp_lit.extract.models import ClapAudio, ClipImages, R2Plus1D

        self.clip = ClipImages(weights.clip, device=device, precision=precision)
        self.clap = ClapAudio(weights.clap, device=device, precision=precision)
        self.r2plus1d = R2Plus1D(weights.r2plus1d, device=device, precision=precision)


def _timed(seconds: dict[str, float], stage: str, fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    seconds[stage] += time.perf_counter() - start
    return value


def _run_batch(
    models: _Models,
    batch: list[WindowInputs],
    root: Path,
    labels: WeakLabelTable | None,
    result: ExtractResult,
) -> None:
    """The three networks on a batch of windows; every array written."""
    seconds = result.seconds
    n = len(batch)
    visual, visual_logits = _timed(
        seconds, "clip", models.clip, torch.cat([w.clip for w in batch])
    )  # (n*10, 768), (n*10, 25)
    st = _timed(seconds, "r2plus1d", models.r2plus1d, torch.cat([w.r2plus1d for w in batch]))
    audio = _timed(seconds, "clap", models.clap.feature_maps, np.stack([w.clap for w in batch]))
    audio_logits = None
    if labels is not None:
        chunks = np.concatenate([w.clap_chunks for w in batch])  # (n*10, 480000)
        audio_logits = _timed(seconds, "clap", models.clap.logits, chunks).reshape(n, 10, -1)
    visual = visual.reshape(n, 10, -1)
    visual_logits = visual_logits.reshape(n, 10, -1)
    st = st.reshape(n, 10, -1)
    start = time.perf_counter()
    for i, window in enumerate(batch):
        arrays = {"audio": audio[i], "visual": visual[i], "visual_st": st[i]}
        if labels is not None:
            weak = labels.get(window.id)
            if weak is None:
                result.unlabelled.append(window.id)
                weak = np.zeros(NUM_CLASSES, dtype=np.float32)
            arrays["pl_audio"] = segment_pseudo_labels(audio_logits[i], CLAP_THRESHOLDS, weak)
            arrays["pl_visual"] = segment_pseudo_labels(visual_logits[i], CLIP_THRESHOLDS, weak)
        for key, array in arrays.items():
            modality = FEATURES[key]
            modality.check(array, window.id, "extraction")
            save_array(root / modality.folder / f"{window.id}.npy", array)
    seconds["write"] += time.perf_counter() - start


def extract(
    inputs: list[Path],
    out: Path,
    settings: ExtractSettings,
    *,
    weights: Path | None = None,
    names: dict[Path, str] | None = None,
    progress: bool = True,
) -> ExtractResult:
    """Extract every input video into ``out`` (npy layout, or ``out/features.h5``).

    A video's arrays are named after its stem (``names`` may give others); two inputs with
    the same name are refused before anything is decoded."""
    from avvp_lit.extract.weights import resolve_weights

    started = time.perf_counter()
    out = Path(out)
    if settings.format == "h5" and settings.labels is None:
        raise InputError(
            "--format h5 writes the valor store, which holds the pseudo labels: give --labels"
        )
    files = video_files(inputs)
    if not files:
        raise InputError(f"no video files in {', '.join(str(i) for i in inputs)}")
    given = names or {}
    names = {f: given.get(f, f.stem) for f in files}
    _check_names(files, names)
    labels = WeakLabelTable(Path(settings.labels)) if settings.labels is not None else None
    paths = resolve_weights(weights)
    root = out / STAGING if settings.format == "h5" else out
    root.mkdir(parents=True, exist_ok=True)
    result = ExtractResult(out=out)

    done = _completed(root) if settings.resume else {}
    todo = []
    for source in files:
        ids = done.get(str(source))
        if ids is not None and _has_all(root, ids, labels is not None):
            result.resumed += 1
        else:
            todo.append(source)
    if not settings.resume:
        (root / DONE_FILE).unlink(missing_ok=True)

    device = torch.device(settings.device)
    models = _timed(result.seconds, "load", _Models, paths, device, settings.precision)
    dataset = VideoFiles(
        todo,
        names=[names[f] for f in todo],
        mean=models.clip.mean,
        std=models.clip.std,
        chunks=labels is not None,
        window_s=settings.window_s,
    )
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=settings.workers,
        collate_fn=_one_item,
        worker_init_fn=_worker_init if settings.workers else None,
        prefetch_factor=2 if settings.workers else None,
    )
    windows_rows: list[str] = []
    pending: list[WindowInputs] = []
    remaining: dict[str, int] = {}
    ids_of: dict[str, list[str]] = defaultdict(list)

    def finish(batch: list[WindowInputs]) -> None:
        _run_batch(models, batch, root, labels, result)
        for window in batch:
            remaining[window.source] -= 1
            if remaining[window.source] == 0:
                with open(root / DONE_FILE, "a") as handle:
                    handle.write(f"{window.source}\t{','.join(ids_of[window.source])}\n")
                result.videos += 1
                bar.advance()

    with progress_bar("extracting", total=len(todo), enabled=progress) as bar:
        for item in loader:
            result.seconds["decode"] += item.decode_s
            if item.error is not None:
                result.skipped[str(item.source)] = item.error
                bar.advance()
                continue
            remaining[str(item.source)] = len(item.windows)
            for window in item.windows:
                ids_of[window.source].append(window.id)
                windows_rows.append(
                    f"{window.id}\t{window.source}\t{window.start:g}\t{window.end:g}\t"
                    f"{window.frame_count}\t{'stretched' if window.short else ''}"
                )
                if window.short:
                    result.short.append(window.id)
            result.windows += len(item.windows)
            pending.extend(item.windows)
            while len(pending) >= settings.batch_windows:
                finish(pending[: settings.batch_windows])
                pending = pending[settings.batch_windows :]
        if pending:
            finish(pending)

    rows = "".join(r + "\n" for r in windows_rows)
    atomic_write_bytes(out / WINDOWS_FILE, (WINDOWS_HEADER + rows).encode())
    skipped = "".join(f"{reason}\n" for reason in result.skipped.values())
    atomic_write_bytes(out / SKIPPED_FILE, skipped.encode())
    if settings.format == "h5":
        from avvp_lit.data.pack import pack

        pack(root, out / "features.h5", feature_set="valor", progress=progress)
        shutil.rmtree(root)
    result.wall_s = time.perf_counter() - started
    return result


def cached_windows(root: Path) -> list[tuple[str, float, float]]:
    """An extraction folder's windows (id, start s, end s) from its windows.tsv, in time
    order."""
    rows = (Path(root) / WINDOWS_FILE).read_text().splitlines()[1:]
    windows = [(c[0], float(c[2]), float(c[3])) for c in (r.split("\t") for r in rows)]
    return sorted(windows, key=lambda w: w[1])


def fill_cache(
    files: list[Path],
    entries: dict[Path, Path],
    settings: ExtractSettings,
    weights: Path | None,
    *,
    progress: bool = True,
) -> dict[str, str]:
    """Extract ``files`` in one run (the models loaded once), then move each video's
    feature arrays and windows into its own folder ``entries[file]``, which appears
    complete or not at all (a folder rename). Files of the same entry (the same bytes) are
    extracted once; windows are named after the entry, so files of one stem do not clash.
    Returns the skipped files and why."""
    staging = next(iter(entries.values())).parent / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    first = {entries[f]: f for f in reversed(files)}  # one file per entry
    unique = [f for f in files if first[entries[f]] == f]
    try:
        result = extract(
            unique,
            staging,
            settings,
            weights=weights,
            names={f: entries[f].name for f in unique},
            progress=progress,
        )
        rows = (staging / WINDOWS_FILE).read_text().splitlines()[1:]
        by_id = {row.split("\t")[0]: row for row in rows}
        for source, ids in _completed(staging).items():
            entry = entries[Path(source)]
            partial = entry.with_name(f".{entry.name}.tmp-{os.getpid()}")
            shutil.rmtree(partial, ignore_errors=True)
            for modality in INPUT_MODALITIES:
                (partial / modality.folder).mkdir(parents=True)
                for window in ids:
                    name = f"{window}.npy"
                    os.replace(staging / modality.folder / name, partial / modality.folder / name)
            table = WINDOWS_HEADER + "".join(by_id[w] + "\n" for w in ids)
            (partial / WINDOWS_FILE).write_text(table)
            (partial / DONE_FILE).write_text(f"{source}\t{','.join(ids)}\n")
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(partial, entry)
        reasons = {f: result.skipped.get(str(first[entries[f]])) for f in files}
        return {str(f): reason for f, reason in reasons.items() if reason is not None}
    finally:
        shutil.rmtree(staging, ignore_errors=True)
