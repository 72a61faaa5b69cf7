"""The parse job behind `avvp-parse ckpt=PATH input=DIR`: a trained model's parsed
events, per video.

``input`` is a dataset folder (the videos of ``split``'s annotation file), a folder of
``.npy`` features in the released layout without annotation files (the videos are the
ids found in its feature folders), or an HDF5 store. Each video's probabilities are
thresholded as the evaluation protocol does (``avvp_lit.metrics.binarize``, gating and
thresholds from the ``metrics`` block); an event is a maximal run of positive seconds
of one class in one modality, audio-visual events being the runs of ``Pa * Pv``.

The output folder receives ``events.jsonl`` (one video per line, events included, even
when there are none), ``events.csv`` (one event per row), ``skipped.txt`` (every video
whose features are missing or malformed, with the reason) and ``summary.json``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from avvp_lit.classes import CLASSES, EVENT_MODALITIES
from avvp_lit.data.llp_stats import positive_runs
from avvp_lit.engine.validation import validate_values
from avvp_lit.engine.video_input import (
    ExtractionKey,
    cache_source,
    check_feature_set,
    default_cache,
    input_names,
    is_video_input,
    video_inputs,
)
from avvp_lit.extract.weights import use_offline_hub
from avvp_lit.inference import Source, binarize_time_major, open_source, run_network
from avvp_lit.metrics import protocol_dict
from avvp_lit.models.loading import read_network
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.utils.errors import ConfigError, InputError, first_names
from avvp_lit.utils.progress import report_line
from avvp_lit.viz.events_page import PageVideo, events_page

CSV_COLUMNS: tuple[str, ...] = ("filename", "class", "modality", "onset", "offset", "score")
SKIPPED_SHOWN = 10


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Events:
    """Parsed events of N videos, one entry per event (E in all).

    ``video`` (E,) the video's row; ``modality`` (E,) an index into
    ``EVENT_MODALITIES``; ``label`` (E,) the class index; ``onset``/``offset`` (E,) whole
    seconds, half-open; ``score`` (E,) the mean frame probability over the event's
    seconds (for audio-visual events, of ``min(p_audio, p_visual)``, so every score is at
    least the segment threshold, as a single modality's are). Ordered by video, then
    onset, class and modality.
    """

    video: np.ndarray
    modality: np.ndarray
    label: np.ndarray
    onset: np.ndarray
    offset: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.video)

    def bounds(self, num_videos: int) -> np.ndarray:
        """(num_videos + 1,) offsets: video ``i``'s events are ``[b[i], b[i + 1])``."""
        return np.searchsorted(self.video, np.arange(num_videos + 1), side="left")


def extract_events(
    pred_audio: np.ndarray,
    pred_visual: np.ndarray,
    prob_audio: np.ndarray,
    prob_visual: np.ndarray,
) -> Events:
    """Events from binary predictions and frame probabilities, all (N, 10, 25) time-major."""
    pred_audio = np.asarray(pred_audio, dtype=bool)
    pred_visual = np.asarray(pred_visual, dtype=bool)
    prob_audio = np.asarray(prob_audio, dtype=np.float64)
    prob_visual = np.asarray(prob_visual, dtype=np.float64)
    active = np.stack([pred_audio, pred_visual, pred_audio & pred_visual], axis=1)
    prob = np.stack([prob_audio, prob_visual, np.minimum(prob_audio, prob_visual)], axis=1)
    active, prob = active.swapaxes(-1, -2), prob.swapaxes(-1, -2)  # (N, 3, 25, T)
    (video, modality, label), onset, offset = positive_runs(active)
    cumulative = np.pad(prob.cumsum(axis=-1), [(0, 0)] * 3 + [(1, 0)])
    total = cumulative[video, modality, label, offset] - cumulative[video, modality, label, onset]
    score = total / np.maximum(offset - onset, 1)
    order = np.lexsort((modality, label, onset, video))
    return Events(
        video=video[order],
        modality=modality[order],
        label=label[order],
        onset=onset[order],
        offset=offset[order],
        score=score[order],
    )


def join_windows(
    pred_audio: np.ndarray,
    pred_visual: np.ndarray,
    prob_audio: np.ndarray,
    prob_visual: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
) -> tuple[Events, np.ndarray]:
    """One long video's events from its windows, on the whole video's time axis.

    The W windows (each (10, 25) decisions and probabilities, in time order, window w
    covering seconds [starts[w], ends[w])) are laid end to end, so an event that runs to
    the end of one window and on from the start of the next is one event. A short window
    (the tail) spreads its 10 segments over its own length. Returns the events (onset and
    offset in seconds; video index 0) and the (W * 10 + 1,) segment borders in seconds.
    """
    windows, segments, classes = np.shape(pred_audio)
    starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)

    def laid(x: np.ndarray) -> np.ndarray:
        return np.asarray(x).reshape(1, windows * segments, classes)  # (1, W * 10, 25)

    events = extract_events(
        laid(pred_audio), laid(pred_visual), laid(prob_audio), laid(prob_visual)
    )
    fractions = np.arange(segments) / segments
    borders = starts[:, None] + (ends - starts)[:, None] * fractions[None, :]  # (W, 10)
    bounds = np.append(borders.reshape(-1), ends[-1])
    joined = Events(
        video=events.video,
        modality=events.modality,
        label=events.label,
        onset=bounds[events.onset],
        offset=bounds[events.offset],
        score=events.score,
    )
    return joined, bounds


def _seconds(value: float) -> int | float:
    """Whole seconds as an int (the feature inputs' events), else seconds to the ms."""
    value = float(value)
    return int(value) if value.is_integer() else round(value, 3)


# --------------------------------------------------------------------------- writers


def event_records(events: Events, filenames: Sequence[str]) -> list[dict[str, Any]]:
    """One JSON-ready dict per video (every video, with or without events)."""
    bounds = events.bounds(len(filenames))
    labels = np.asarray(CLASSES)[events.label]
    modalities = np.asarray(EVENT_MODALITIES)[events.modality]
    records = []
    for row, name in enumerate(filenames):
        part = slice(bounds[row], bounds[row + 1])
        records.append(
            {
                "filename": name,
                "events": [
                    {
                        "class": str(c),
                        "modality": str(m),
                        "onset": _seconds(on),
                        "offset": _seconds(off),
                        "score": round(float(s), 4),
                    }
                    for c, m, on, off, s in zip(
                        labels[part],
                        modalities[part],
                        events.onset[part],
                        events.offset[part],
                        events.score[part],
                        strict=True,
                    )
                ],
            }
        )
    return records


def jsonl_text(records: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def csv_text(records: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        for event in record["events"]:
            writer.writerow(
                [
                    record["filename"],
                    event["class"],
                    event["modality"],
                    event["onset"],
                    event["offset"],
                    f"{event['score']:.4f}",
                ]
            )
    return buffer.getvalue()


def skipped_text(skipped: Mapping[str, str]) -> str:
    return "filename\treason\n" + "".join(f"{n}\t{r}\n" for n, r in skipped.items())


def write_outputs(out: Path, records: list[dict[str, Any]], summary: Mapping[str, Any]) -> None:
    """Write events.jsonl, events.csv, skipped.txt and summary.json, each atomically."""
    atomic_write_bytes(out / "events.jsonl", jsonl_text(records).encode())
    atomic_write_bytes(out / "events.csv", csv_text(records).encode())
    atomic_write_bytes(out / "skipped.txt", skipped_text(summary["skipped"]).encode())
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())


# --------------------------------------------------------------------------- entry


def _check_feature_set(source: Source, network_config: Mapping[str, Any] | None) -> None:
    expected = (network_config or {}).get("feature_set")
    actual = source.store.feature_set.name
    if expected is not None and expected != actual:
        raise ConfigError(
            f"the checkpoint's model reads {expected!r} features but input holds {actual!r}"
        )


def _device(name: str) -> str:
    """``device`` as torch names it: ``cpu``, ``cuda`` or ``cuda:N`` (present), or ``auto``."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    refused = ConfigError(f"device={name!r} is not allowed; choose cpu, cuda, cuda:N or auto")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise refused from None
    if device.type not in ("cpu", "cuda"):
        raise refused
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r}: no CUDA device here; choose cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device={name!r}: this machine has {torch.cuda.device_count()} GPUs")
    return str(device)


def parse_videos(cfg: DictConfig) -> dict[str, Any]:
    """Parse every video of ``cfg.input`` with ``cfg.ckpt``; returns summary.json's content."""
    validate_values(cfg)
    device = _device(str(cfg.get("device", "cpu")))
    metrics = OmegaConf.to_container(cfg.metrics, resolve=True)
    protocol = protocol_dict(**metrics)
    loaded = read_network(cfg.ckpt, trusted=tuple(cfg.get("trusted_blocks") or ()))
    network, network_config = loaded.network, loaded.model_config
    out = Path(cfg.output_dir)
    model = str((network_config or {}).get("_target_", type(network).__name__))
    source = Path(cfg.input)
    if source.is_dir() and not any(source.iterdir()):
        raise InputError(f"input={source}: the folder is empty (no videos, no features)")
    if is_video_input(source):
        summary, records, pages = _parse_video_files(cfg, network, network_config, metrics, device)
    else:
        summary, records, pages = _parse_features(cfg, network, network_config, metrics, device)
    summary = {"ckpt": str(cfg.ckpt), "input": str(cfg.input), **summary, "protocol": protocol}
    write_outputs(out, records, summary)
    page = events_page(pages, model=model, checkpoint=str(cfg.ckpt), protocol=protocol)
    atomic_write_bytes(out / "events.html", page.encode())
    _report(summary, out)
    if not summary["parsed"]:
        raise InputError(
            f"input={cfg.input}: none of its {summary['videos']} videos could be parsed "
            f"(reasons in {out / 'skipped.txt'})"
        )
    return summary


# (summary without the run's ckpt, input and protocol; per-video records; the page's videos)
ParseOutcome = tuple[dict[str, Any], list[dict[str, Any]], list[PageVideo]]


def _parse_features(
    cfg: DictConfig, network: torch.nn.Module, network_config: Any, metrics: dict, device: str
) -> ParseOutcome:
    """A dataset folder, a feature folder or an HDF5 store."""
    feature_set = cfg.feature_set or (network_config or {}).get("feature_set")
    source = open_source(
        cfg.input, split=cfg.split, feature_set=feature_set, store_kind=cfg.get("store", "auto")
    )
    _check_feature_set(source, network_config)
    if not source.filenames:
        raise ConfigError(f"input={cfg.input}: no videos found in it")
    parsed = run_network(
        network,
        source,
        batch_size=int(cfg.batch_size),
        device=device,
        progress=bool(cfg.get("progress", True)),
    )
    pred_audio, pred_visual = binarize_time_major(parsed.probabilities, metrics)
    frame = parsed.probabilities["frame_prob"]
    events = extract_events(pred_audio, pred_visual, frame[:, :, 0], frame[:, :, 1])
    records = event_records(events, parsed.filenames)
    bounds = np.arange(frame.shape[1] + 1, dtype=float)
    pages = [
        PageVideo(r["filename"], bounds, frame[i, :, 0], frame[i, :, 1], r["events"])
        for i, r in enumerate(records)
    ]
    summary = {
        "mode": source.mode,
        "split": cfg.split if source.mode == "dataset" else None,
        "feature_set": source.store.feature_set.name,
        "videos": len(source.filenames),
        "parsed": len(parsed.filenames),
        "events": len(events),
        "skipped": parsed.skipped,
    }
    return summary, records, pages


def _linked_video(file: Path, out: Path, name: str) -> str:
    """The page's path to a video: ``videos/<name>`` in the output folder, a link to the
    file, so the page finds it whether it is opened from the run's folder or through
    ``outputs/parse/latest`` (a relative path to the file itself would hold for one only)."""
    link = out / "videos" / name
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(file.resolve())
    except OSError:
        return Path(os.path.relpath(file.resolve(), out.resolve())).as_posix()
    return f"videos/{quote(name)}"


def _parse_video_files(
    cfg: DictConfig, network: torch.nn.Module, network_config: Any, metrics: dict, device: str
) -> ParseOutcome:
    """Video files: features from the extraction cache (extracting what is not there,
    all uncached files in one run), the network once over every video's windows, each
    video's windows' events joined on its time axis."""
    from avvp_lit.extract.pipeline import DONE_FILE, ExtractSettings, cached_windows, fill_cache
    from avvp_lit.extract.weights import resolve_weights

    check_feature_set(cfg.feature_set or (network_config or {}).get("feature_set"))
    files = video_inputs(Path(cfg.input))
    if not files:
        raise ConfigError(f"input={cfg.input}: no video files in it")
    names = input_names(files)
    out = Path(cfg.output_dir)
    weights = Path(cfg.weights) if cfg.get("weights") else None
    use_offline_hub(weights)
    identity = resolve_weights(weights).identity()
    settings = ExtractSettings(
        window_s=float(cfg.window),
        precision=str(cfg.precision),
        device=device,
        workers=int(cfg.workers),
    )
    key = ExtractionKey("valor", settings.window_s, settings.precision, identity)
    cache = Path(cfg.extract_cache) if cfg.get("extract_cache") else default_cache()
    entries = {f: cache / key.of(f) for f in files if f.is_file()}
    skipped = {names[f][0]: f"{f}: no such file" for f in files if not f.is_file()}
    todo = [f for f, entry in entries.items() if not (entry / DONE_FILE).is_file()]
    if todo:
        failed = fill_cache(todo, entries, settings, weights, progress=bool(cfg.progress))
        skipped.update({names[Path(f)][0]: reason for f, reason in failed.items()})
    readable = {f: entry for f, entry in entries.items() if names[f][0] not in skipped}
    windows = {entry: cached_windows(entry) for entry in readable.values()}  # time order
    parsed = run_network(
        network,
        cache_source({entry: [w for w, _, _ in rows] for entry, rows in windows.items()}),
        batch_size=int(cfg.batch_size),
        device=device,
        progress=bool(cfg.progress),
    )
    row = {window: i for i, window in enumerate(parsed.filenames)}
    records: list[dict[str, Any]] = []
    pages: list[PageVideo] = []
    for file, entry in readable.items():
        name, link = names[file]
        lost = [parsed.skipped[w] for w, _, _ in windows[entry] if w in parsed.skipped]
        if lost:
            skipped[name] = "; ".join(lost)
            continue
        order = np.array([row[w] for w, _, _ in windows[entry]])
        probabilities = {k: v[order] for k, v in parsed.probabilities.items()}
        pred_audio, pred_visual = binarize_time_major(probabilities, metrics)
        frame = probabilities["frame_prob"]  # (W, 10, 2, 25)
        events, bounds = join_windows(
            pred_audio,
            pred_visual,
            frame[:, :, 0],
            frame[:, :, 1],
            np.array([s for _, s, _ in windows[entry]]),
            np.array([e for _, _, e in windows[entry]]),
        )
        record = event_records(events, [name])[0]
        records.append(record)
        pages.append(
            PageVideo(
                name,
                bounds,
                frame[:, :, 0].reshape(-1, frame.shape[-1]),
                frame[:, :, 1].reshape(-1, frame.shape[-1]),
                record["events"],
                video=_linked_video(file, out, link),
            )
        )
    summary = {
        "mode": "video",
        "split": None,
        "feature_set": "valor",
        "videos": len(files),
        "parsed": len(records),
        "events": sum(len(r["events"]) for r in records),
        "extracted": len(todo),
        "extract_cache": str(cache),
        "weights": identity,
        "skipped": skipped,
    }
    return summary, records, pages


def _report(summary: Mapping[str, Any], out: Path) -> None:
    """The outcome as log lines: on the console and in the run's ``parse.log``."""
    report_line(
        f"parsed {summary['parsed']} of {summary['videos']} videos "
        f"({summary['mode']} input, {summary['feature_set']} features): "
        f"{summary['events']} events in {out}"
    )
    skipped = list(summary["skipped"])
    if skipped:
        report_line(
            f"skipped {len(skipped)} videos with missing or malformed features: "
            f"{first_names(skipped, SKIPPED_SHOWN)} (reasons in {out / 'skipped.txt'})"
        )
