"""`avvp-parse ckpt=PATH input=DIR`: a trained model's parsed events, per video.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from torch import nn

from avvp_lit.classes import CLASSES, NUM_CLASSES, NUM_SEGMENTS
from avvp_lit.data.annotations import SPLIT_FILES, feature_id, read_weak_labels
from avvp_lit.data.features import FEATURE_SETS, FeatureError, FeatureSet
from avvp_lit.data.llp_stats import find_runs
from avvp_lit.data.stores import FeatureStore, h5_file, open_store
from avvp_lit.evaluate import load_network
from avvp_lit.metrics import binarize, protocol_dict, resolve_thresholds
from avvp_lit.predictions import PREDICTION_KEYS
from avvp_lit.progress import progress_bar
from avvp_lit.run import ConfigError, run_task, validate_values
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.utils.errors import run_hydra_app

EVENT_MODALITIES: tuple[str, ...] = ("audio", "visual", "audio-visual")
CSV_COLUMNS: tuple[str, ...] = ("filename", "class", "modality", "onset", "offset", "score")
SKIPPED_SHOWN = 10
READ_ERRORS = (FeatureError, OSError, EOFError, ValueError)


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
    (video, modality, label), onset, offset = find_runs(active)
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


def binarize_time_major(
    probabilities: Mapping[str, Any], metrics: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's binary predictions, (N, 10, 25) time-major bool audio and visual.

    ``probabilities`` holds ``global_prob``, ``a_prob``, ``v_prob`` (N, 25) and
    ``frame_prob`` (N, 10, 2, 25); ``metrics`` the gating and thresholds
    (``gating``, ``video_threshold``, ``segment_threshold``, ``class_thresholds``).
    """
    video_thr, segment_thr = resolve_thresholds(
        video_threshold=metrics.get("video_threshold", 0.5),
        segment_threshold=metrics.get("segment_threshold", 0.5),
        class_thresholds=metrics.get("class_thresholds"),
    )
    pred_audio, pred_visual = binarize(
        *(torch.as_tensor(probabilities[k]) for k in ("global_prob", "a_prob", "v_prob")),
        torch.as_tensor(probabilities["frame_prob"]),
        gating=metrics.get("gating", "global"),
        video_threshold=video_thr,
        segment_threshold=segment_thr,
    )
    return (
        pred_audio.transpose(1, 2).cpu().numpy(),
        pred_visual.transpose(1, 2).cpu().numpy(),
    )


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Source:
    """The videos to parse and where their features are.

    ``filenames`` are what the output names (full LLP filenames for a dataset split,
    feature ids otherwise); ``ids`` the matching feature ids; ``mode`` ``dataset`` or
    ``features``.
    """

    store: FeatureStore
    filenames: list[str]
    ids: list[str]
    mode: str


def network_inputs(feature_set: FeatureSet) -> FeatureSet:
    """The feature set without its pseudo labels: new videos have none, networks need none."""
    return replace(
        feature_set, modalities=tuple(m for m in feature_set.modalities if not m.is_label)
    )


def detect_feature_set(root: Path) -> str:
    """The feature set whose network-input folders all exist under ``root``."""
    found = [
        name
        for name, spec in FEATURE_SETS.items()
        if all((root / m.folder).is_dir() for m in network_inputs(spec).modalities)
    ]
    if len(found) != 1:
        raise ConfigError(
            f"input={root}: cannot tell the feature set from its folders "
            f"(found {found or 'none'}); name it: feature_set=han or feature_set=valor"
        )
    return found[0]


def _ids_in_folders(root: Path, feature_set: FeatureSet) -> list[str]:
    """Every id with a ``.npy`` file in any input folder, so partial videos get reported."""
    ids: set[str] = set()
    for modality in feature_set.modalities:
        folder = root / modality.folder
        if folder.is_dir():
            ids.update(path.stem for path in folder.glob("*.npy"))
    return sorted(ids)


def open_source(
    input_path: str | Path,
    *,
    split: str,
    feature_set: str | None,
    store_kind: str = "auto",
) -> Source:
    """Resolve ``input`` to a feature store and the list of videos to parse."""
    if split not in SPLIT_FILES:
        raise ConfigError(f"split={split!r} is not allowed; choose one of {', '.join(SPLIT_FILES)}")
    root = Path(input_path)
    if not root.exists():
        raise ConfigError(f"input={root}: no such file or folder")
    try:
        is_h5 = h5_file(root, store_kind) is not None
        if feature_set is None and not is_h5:
            feature_set = detect_feature_set(root)
        store = open_store(root, feature_set, store_kind)
    except FeatureError as error:
        raise ConfigError(f"input={root}: {error}") from None
    store.feature_set = network_inputs(store.feature_set)
    if not is_h5:
        absent = [m.folder for m in store.feature_set.modalities if not (root / m.folder).is_dir()]
        if absent:
            raise ConfigError(
                f"input={root}: no {', '.join(absent)} folder for {store.feature_set.name} "
                "features (is feature_set right?)"
            )
    split_file = root / SPLIT_FILES[split]
    if root.is_dir() and split_file.is_file():
        filenames = read_weak_labels(split_file).filenames
        return Source(store, filenames, [feature_id(n) for n in filenames], "dataset")
    ids = sorted(store.ids()) if is_h5 else _ids_in_folders(root, store.feature_set)
    return Source(store, list(ids), list(ids), "features")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Parsed:
    """What a parse produced: the parsed videos' names and probabilities, and the skipped.

    ``probabilities`` maps ``global_prob``, ``a_prob``, ``v_prob`` (N, 25) and
    ``frame_prob`` (N, 10, 2, 25) to float32 arrays; ``skipped`` maps a filename to why.
    """

    filenames: list[str]
    probabilities: dict[str, np.ndarray]
    skipped: dict[str, str]


def _batches(source: Source, batch_size: int, skipped: dict[str, str]) -> Iterator[tuple]:
    """Batches of (filenames, {key: (B, ...) float32}); unreadable videos go to ``skipped``."""
    names: list[str] = []
    arrays: list[dict[str, np.ndarray]] = []
    for name, video in zip(source.filenames, source.ids, strict=True):
        try:
            arrays.append(source.store.read(video))
            names.append(name)
        except READ_ERRORS as error:
            skipped[name] = str(error).replace("\n", " ")
        if len(names) == batch_size:
            yield names, _stack(arrays)
            names, arrays = [], []
    if names:
        yield names, _stack(arrays)


def _stack(arrays: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.stack([a[key] for a in arrays])) for key in arrays[0]}


@torch.no_grad()
def run_network(
    network: nn.Module,
    source: Source,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
) -> Parsed:
    """The network's probabilities for every readable video of ``source``, in its order."""
    network = network.to(device).eval()
    skipped: dict[str, str] = {}
    names: list[str] = []
    outputs: dict[str, list[np.ndarray]] = {k: [] for k in PREDICTION_KEYS}
    with progress_bar("parsing", total=len(source.filenames), enabled=progress) as bar:
        for batch_names, batch in _batches(source, batch_size, skipped):
            inputs = [batch[k].to(device) for k in ("audio", "visual", "visual_st")]
            output = network(*inputs)
            for key, values in outputs.items():
                values.append(getattr(output, key).float().cpu().numpy())
            names += batch_names
            bar.advance(len(batch_names))
    empty = {
        "global_prob": (0, NUM_CLASSES),
        "a_prob": (0, NUM_CLASSES),
        "v_prob": (0, NUM_CLASSES),
        "frame_prob": (0, NUM_SEGMENTS, 2, NUM_CLASSES),
    }
    probabilities = {
        k: np.concatenate(v) if v else np.zeros(empty[k], np.float32) for k, v in outputs.items()
    }
    return Parsed(names, probabilities, skipped)


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
                        "onset": int(on),
                        "offset": int(off),
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
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def parse(cfg: DictConfig, console: Console | None = None) -> dict[str, Any]:
    """Parse every video of ``cfg.input`` with ``cfg.ckpt``; returns summary.json's content."""
    console = console or Console()
    validate_values(cfg)
    metrics = OmegaConf.to_container(cfg.metrics, resolve=True)
    protocol = protocol_dict(**metrics)
    network, network_config = load_network(cfg.ckpt, cfg.get("trusted_blocks") or ())
    feature_set = cfg.feature_set or (network_config or {}).get("feature_set")
    source = open_source(
        cfg.input, split=cfg.split, feature_set=feature_set, store_kind=cfg.get("store", "auto")
    )
    _check_feature_set(source, network_config)
    parsed = run_network(
        network,
        source,
        batch_size=int(cfg.batch_size),
        device=_device(cfg.get("device", "cpu")),
        progress=bool(cfg.get("progress", True)),
    )
    pred_audio, pred_visual = binarize_time_major(parsed.probabilities, metrics)
    frame = parsed.probabilities["frame_prob"]
    events = extract_events(pred_audio, pred_visual, frame[:, :, 0], frame[:, :, 1])
    records = event_records(events, parsed.filenames)
    out = Path(cfg.output_dir)
    summary = {
        "ckpt": str(cfg.ckpt),
        "input": str(cfg.input),
        "mode": source.mode,
        "split": cfg.split if source.mode == "dataset" else None,
        "feature_set": source.store.feature_set.name,
        "protocol": protocol,
        "videos": len(source.filenames),
        "parsed": len(parsed.filenames),
        "events": len(events),
        "skipped": parsed.skipped,
    }
    write_outputs(out, records, summary)
    _report(console, summary, out)
    return summary


def _report(console: Console, summary: Mapping[str, Any], out: Path) -> None:
    console.print(
        f"parsed {summary['parsed']} of {summary['videos']} videos "
        f"({summary['mode']} input, {summary['feature_set']} features): "
        f"{summary['events']} events in {out}",
        highlight=False,
    )
    skipped = list(summary["skipped"])
    if skipped:
        head = ", ".join(skipped[:SKIPPED_SHOWN]) + (" ..." if len(skipped) > SKIPPED_SHOWN else "")
        console.print(
            f"[yellow]skipped {len(skipped)} videos with missing or malformed features[/]: "
            f"{head} (reasons in {out / 'skipped.txt'})"
        )


@hydra.main(version_base="1.3", config_path="pkg://avvp_lit.conf", config_name="parse")
def _hydra_main(cfg: DictConfig) -> None:
    run_task("avvp-parse", parse, cfg)


def main() -> None:
    run_hydra_app("avvp-parse", _hydra_main)


if __name__ == "__main__":
    main()
