"""The AVVP evaluation protocol as pure, batched tensor functions.

Every function works on whole batches of videos at once; there is no Python loop over
videos or classes. Binary predictions and ground truth are ``(N, 25, 10)`` tensors
(video, class, second), the layout of the original evaluation code. The protocol
(``docs/avvp.md`` §3):

- per video and class, TP/FP/FN counts at segment level (seconds) and event level
  (maximal runs of positive seconds, matched at IoU >= 0.5);
- a video's score is the mean of ``2TP / (2TP + FP + FN)`` over the classes with any
  prediction or annotation, or 1.0 when no class qualifies;
- Event@AV pools audio and visual counts per class before scoring;
- dataset scores are means over videos, in percent; Type@AV is the mean of A, V and AV.

Per-video counts are the currency: ``avvp_counts`` returns them as
``(N, level=2, modality=3, stat=3, class=25)`` integers (level: segment, event;
modality: audio, visual, audio-visual; stat: TP, FP, FN), from which every score and
diagnostic derives. Keeping counts (not scores) lets a distributed metric deduplicate
videos and still produce per-class diagnostics.

``protocol_dict`` and ``format_protocol`` describe the settings (gating, thresholds,
annotation files and md5) that every printed or saved result carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from avvp_lit.classes import NUM_CLASSES

GATINGS: tuple[str, ...] = ("global", "modality", "mmcse")
METRIC_NAMES: tuple[str, ...] = (
    "seg_a",
    "seg_v",
    "seg_av",
    "seg_type",
    "seg_event",
    "evt_a",
    "evt_v",
    "evt_av",
    "evt_type",
    "evt_event",
)
LEVELS: tuple[str, ...] = ("seg", "evt")
LEVEL_TITLES = {"seg": "segment level", "evt": "event level"}
MODALITY_CODES: tuple[str, ...] = ("a", "v", "av")
METRIC_TITLES = {  # table headers
    "seg_a": "Seg A",
    "seg_v": "Seg V",
    "seg_av": "Seg AV",
    "seg_type": "Seg Type",
    "seg_event": "Seg Event",
    "evt_a": "Evt A",
    "evt_v": "Evt V",
    "evt_av": "Evt AV",
    "evt_type": "Evt Type",
    "evt_event": "Evt Event",
}
CLASS_F1_KEYS: tuple[str, ...] = tuple(f"{lv}_{m}" for lv in LEVELS for m in MODALITY_CODES)
THRESHOLD_KEYS: tuple[str, ...] = ("video", "audio", "visual")


def check_gating(gating: str) -> None:
    """Raise ValueError naming the choices unless ``gating`` is one of ``GATINGS``."""
    if gating not in GATINGS:
        raise ValueError(f"unknown gating {gating!r}; choose one of {', '.join(GATINGS)}")


def level_metrics(level: str) -> tuple[str, ...]:
    """The five metric names of one level (``seg`` or ``evt``), in ``METRIC_NAMES`` order."""
    return tuple(name for name in METRIC_NAMES if name.startswith(f"{level}_"))


def short_title(name: str) -> str:
    """``Seg Type`` -> ``Type``: the title within its level's table."""
    return METRIC_TITLES[name].split(" ", 1)[1]


IOU_THRESHOLD = 0.5
_TABLE_MAX_SEGMENTS = 12

ArrayLike = Tensor | np.ndarray


def _tensor(x: ArrayLike | float | Sequence[float], **kwargs: Any) -> Tensor:
    return torch.as_tensor(x, **kwargs)


# --------------------------------------------------------------------------- thresholds


def resolve_thresholds(
    *,
    video_threshold: float = 0.5,
    segment_threshold: float = 0.5,
    class_thresholds: Mapping[str, Sequence[float]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class thresholds from the scalar defaults and optional per-class overrides.

    ``class_thresholds`` maps any of ``video`` (applied to ``global_prob``, ``a_prob``
    and ``v_prob``), ``audio`` and ``visual`` (applied to the audio and visual rows of
    ``frame_prob``) to 25 values in class order; a missing key keeps the scalar.

    Returns ``video`` (25,) and ``segment`` (2, 25) float64 arrays (modality 0 audio).
    """
    video = np.full(NUM_CLASSES, float(video_threshold), dtype=np.float64)
    segment = np.full((2, NUM_CLASSES), float(segment_threshold), dtype=np.float64)
    for key, values in (class_thresholds or {}).items():
        if key not in THRESHOLD_KEYS:
            raise ValueError(
                f"class_thresholds: unknown key {key!r}; use any of {', '.join(THRESHOLD_KEYS)}"
            )
        row = np.asarray(values, dtype=np.float64)
        if row.shape != (NUM_CLASSES,):
            raise ValueError(
                f"class_thresholds[{key!r}] has shape {row.shape}, expected ({NUM_CLASSES},)"
            )
        if key == "video":
            video[:] = row
        else:
            segment[0 if key == "audio" else 1] = row
    for name, values in (("video", video), ("segment", segment)):
        if not np.all((values >= 0.0) & (values <= 1.0)):
            raise ValueError(f"{name} thresholds must lie in [0, 1]")
    return video, segment


# which video-level probability gates each modality's seconds: (audio, visual)
GATE_SOURCES: dict[str, tuple[str, str]] = {
    "global": ("global_prob", "global_prob"),
    "modality": ("a_prob", "v_prob"),
    "mmcse": ("global_prob", "v_prob"),
}


def binarize(
    global_prob: ArrayLike,
    a_prob: ArrayLike,
    v_prob: ArrayLike,
    frame_prob: ArrayLike,
    *,
    gating: str = "global",
    video_threshold: float | ArrayLike = 0.5,
    segment_threshold: float | ArrayLike = 0.5,
) -> tuple[Tensor, Tensor]:
    """Binary segment predictions from model probabilities under a gating mode.

    ``global_prob``, ``a_prob``, ``v_prob`` (N, 25); ``frame_prob`` (N, 10, 2, 25)
    (modality 0 audio, 1 visual). ``video_threshold`` broadcasts to (25,),
    ``segment_threshold`` to (2, 25). Comparisons are ``>=`` in float64 so that a
    per-class threshold means the same whatever the input precision.

    Gating (which video-level decision masks the segments, :data:`GATE_SOURCES`):
    ``global`` both by ``global_prob``; ``modality`` audio by ``a_prob``, visual by
    ``v_prob``; ``mmcse`` audio by ``global_prob``, visual by ``v_prob``.

    Returns ``pred_audio``, ``pred_visual`` bool (N, 25, 10).
    """
    check_gating(gating)
    frame = _tensor(frame_prob).double()
    device = frame.device
    video_thr = _tensor(video_threshold, dtype=torch.float64, device=device)
    segment_thr = _tensor(segment_threshold, dtype=torch.float64, device=device)
    segment_thr = segment_thr.expand(2, NUM_CLASSES)
    video_level = {"global_prob": global_prob, "a_prob": a_prob, "v_prob": v_prob}
    gate_audio, gate_visual = (
        _tensor(video_level[source], device=device).double() >= video_thr
        for source in GATE_SOURCES[gating]
    )
    segments = frame >= segment_thr  # (N, 10, 2, 25)
    pred_audio = segments[:, :, 0, :].transpose(1, 2) & gate_audio[:, :, None]
    pred_visual = segments[:, :, 1, :].transpose(1, 2) & gate_visual[:, :, None]
    return pred_audio, pred_visual


# --------------------------------------------------------------------------- counts


def _segment_counts_direct(pred: Tensor, gt: Tensor) -> Tensor:
    tp = (pred & gt).sum(-1)
    fp = (pred & ~gt).sum(-1)
    fn = (~pred & gt).sum(-1)
    return torch.stack((tp, fp, fn), dim=-2).to(torch.int32)


def _intervals(num_segments: int) -> tuple[Tensor, Tensor]:
    """Every half-open interval [start, end) of ``num_segments`` seconds, (I,) each."""
    start, end = torch.triu_indices(num_segments + 1, num_segments + 1, offset=1)
    return start, end


def _iou_match_matrix(num_segments: int) -> Tensor:
    """(I, I) bool: intervals i and j have IoU >= 0.5 (exact: small integers, 0.5 * union)."""
    start, end = _intervals(num_segments)
    inter = torch.minimum(end[:, None], end[None, :]) - torch.maximum(
        start[:, None], start[None, :]
    )
    union = torch.maximum(end[:, None], end[None, :]) - torch.minimum(
        start[:, None], start[None, :]
    )
    return inter.clamp(min=0) >= IOU_THRESHOLD * union


def run_indicators(x: ArrayLike) -> Tensor:
    """Which intervals are events (maximal runs of ones) of a binary sequence.

    ``x`` binary (..., T). Returns bool (..., I) over the I = T(T+1)/2 intervals of
    ``_intervals(T)``: True where every second of [start, end) is positive and the
    seconds just outside it (if any) are not.
    """
    x = _tensor(x).to(torch.int32)
    num_segments = x.shape[-1]
    start, end = _intervals(num_segments)
    start, end = start.to(x.device), end.to(x.device)
    padded = torch.nn.functional.pad(x, (1, 1))  # (..., T + 2); second t sits at t + 1
    prefix = torch.nn.functional.pad(x.cumsum(-1), (1, 0))  # prefix[k] = sum of x[:k]
    full = (prefix[..., end] - prefix[..., start]) == (end - start)
    return full & (padded[..., start] == 0) & (padded[..., end + 1] == 0)


def match_runs(pred_runs: Tensor, gt_runs: Tensor) -> Tensor:
    """Event-level TP, FP, FN from run indicators, following the original matching.

    A predicted event is a TP if some GT event has IoU >= 0.5 with it, else an FP; a GT
    event that no predicted event matches is an FN. ``pred_runs``, ``gt_runs`` bool
    (..., I) from ``run_indicators``. Returns int32 (..., 3).
    """
    num_intervals = pred_runs.shape[-1]
    num_segments = round((np.sqrt(8 * num_intervals + 1) - 1) / 2)
    match = _iou_match_matrix(num_segments).to(device=pred_runs.device, dtype=torch.float32)
    p, g = pred_runs.to(torch.float32), gt_runs.to(torch.float32)
    pred_hit = (g @ match) > 0  # interval i has IoU >= 0.5 with some GT event
    gt_hit = (p @ match) > 0
    tp = (pred_runs & pred_hit).sum(-1)
    fp = pred_runs.sum(-1) - tp
    fn = (gt_runs & ~gt_hit).sum(-1)
    return torch.stack((tp, fp, fn), dim=-1).to(torch.int32)


def _event_counts_direct(pred: Tensor, gt: Tensor) -> Tensor:
    counts = match_runs(run_indicators(pred), run_indicators(gt))  # (..., K, 3)
    return counts.transpose(-1, -2).contiguous()


# Sequences of at most 12 seconds are handled as integer codes (bit t = second t): the
# counts of any pair of codes are precomputed once per device, so that a batch costs a
# few table lookups instead of run extraction and matching.


def _encode(x: Tensor) -> Tensor:
    """Binary (..., T) -> int64 codes (...,); exact, since float64 holds T <= 53 bits."""
    weights = 2.0 ** torch.arange(x.shape[-1], device=x.device, dtype=torch.float64)
    return (x.to(torch.float64) @ weights).to(torch.int64)


def _lookup(table: Tensor, index: Tensor) -> Tensor:
    """``table[index]`` for a 1-D table (index_select: far faster than advanced indexing)."""
    return table.index_select(0, index.reshape(-1)).reshape(index.shape)


@cache
def _code_tables(num_segments: int, device: torch.device) -> dict[str, Tensor]:
    """Per-code and per-pair tables for all binary sequences of ``num_segments`` seconds.

    ``ones`` (C,) positive seconds and ``runs`` (C,) events of each code, C = 2^T;
    ``event_tp`` and ``event_fn`` (C * C,) the event-level TP and FN of the pair
    (pred, gt) at ``pred * C + gt``, from ``run_indicators`` and the IoU matrix. int32.
    """
    codes = torch.arange(2**num_segments, device=device)
    bits = (codes[:, None] >> torch.arange(num_segments, device=device)) & 1
    runs = run_indicators(bits).to(torch.float32)  # (C, I)
    match = _iou_match_matrix(num_segments).to(device=device, dtype=torch.float32)
    hit = ((runs @ match) > 0).to(torch.float32)  # hit[c, i]: an event of c matches interval i
    tp = runs @ hit.T  # tp[p, g]: events of p matched by some event of g
    matched_gt = hit @ runs.T  # matched_gt[p, g]: events of g matched by some event of p
    num_runs = runs.sum(-1)
    fn = num_runs[None, :] - matched_gt
    return {
        "ones": bits.sum(-1).to(torch.int32),
        "runs": num_runs.round().to(torch.int32),
        "event_tp": tp.round().to(torch.int32).reshape(-1),
        "event_fn": fn.round().to(torch.int32).reshape(-1),
    }


def _segment_counts_from_codes(pred: Tensor, gt: Tensor, tables: dict[str, Tensor]) -> Tensor:
    ones = tables["ones"]
    tp = _lookup(ones, pred & gt)
    fp = _lookup(ones, pred) - tp
    fn = _lookup(ones, gt) - tp
    return torch.stack((tp, fp, fn), dim=-2)


def _event_counts_from_codes(pred: Tensor, gt: Tensor, tables: dict[str, Tensor]) -> Tensor:
    pair = pred * len(tables["runs"]) + gt
    tp = _lookup(tables["event_tp"], pair)
    fn = _lookup(tables["event_fn"], pair)
    fp = _lookup(tables["runs"], pred) - tp
    return torch.stack((tp, fp, fn), dim=-2)


def _binary(x: ArrayLike) -> Tensor:
    return _tensor(x).bool()


def segment_counts(pred: ArrayLike, gt: ArrayLike) -> Tensor:
    """Segment-level TP, FP, FN per video and class.

    ``pred``, ``gt`` binary (..., 25, T). Returns int32 (..., 3, 25), stat order TP, FP, FN.
    """
    p = _binary(pred)
    g = _binary(gt).to(p.device)
    if p.shape[-1] > _TABLE_MAX_SEGMENTS:
        return _segment_counts_direct(p, g)
    tables = _code_tables(p.shape[-1], p.device)
    return _segment_counts_from_codes(_encode(p), _encode(g), tables)


def event_counts(pred: ArrayLike, gt: ArrayLike) -> Tensor:
    """Event-level TP, FP, FN per video and class.

    ``pred``, ``gt`` binary (..., 25, T). Returns int32 (..., 3, 25), stat order TP, FP,
    FN. For T <= 12 each (video, class) pair is a lookup in tables of all sequence pairs;
    longer sequences use ``run_indicators`` and ``match_runs`` directly.
    """
    p = _binary(pred)
    g = _binary(gt).to(p.device)
    if p.shape[-1] > _TABLE_MAX_SEGMENTS:
        return _event_counts_direct(p, g)
    tables = _code_tables(p.shape[-1], p.device)
    return _event_counts_from_codes(_encode(p), _encode(g), tables)


def avvp_counts(
    pred_audio: ArrayLike, pred_visual: ArrayLike, gt_audio: ArrayLike, gt_visual: ArrayLike
) -> Tensor:
    """All per-video counts of the protocol.

    Inputs binary (N, 25, T). Audio-visual prediction and ground truth are the products
    of the audio and visual ones. Returns int32 (N, 2, 3, 3, 25): level (segment,
    event), modality (audio, visual, audio-visual), stat (TP, FP, FN), class.
    """
    pa, pv = _binary(pred_audio), _binary(pred_visual)
    ga, gv = _binary(gt_audio).to(pa.device), _binary(gt_visual).to(pa.device)
    num_segments = pa.shape[-1]
    if num_segments > _TABLE_MAX_SEGMENTS:
        pred = torch.stack((pa, pv, pa & pv), dim=1)  # (N, 3, 25, T)
        gt = torch.stack((ga, gv, ga & gv), dim=1)
        levels = (_segment_counts_direct(pred, gt), _event_counts_direct(pred, gt))
    else:
        tables = _code_tables(num_segments, pa.device)
        ca, cv, cga, cgv = (_encode(x) for x in (pa, pv, ga, gv))
        pred = torch.stack((ca, cv, ca & cv), dim=1)  # (N, 3, 25) codes
        gt = torch.stack((cga, cgv, cga & cgv), dim=1)
        levels = (
            _segment_counts_from_codes(pred, gt, tables),
            _event_counts_from_codes(pred, gt, tables),
        )
    return torch.stack(levels, dim=1)


def video_counts(
    global_prob: ArrayLike,
    a_prob: ArrayLike,
    v_prob: ArrayLike,
    frame_prob: ArrayLike,
    gt_audio: ArrayLike,
    gt_visual: ArrayLike,
    *,
    gating: str = "global",
    video_threshold: float | ArrayLike = 0.5,
    segment_threshold: float | ArrayLike = 0.5,
) -> Tensor:
    """The protocol's counts straight from model outputs: :func:`binarize`, then
    :func:`avvp_counts`. The one scoring path of the project: the functional
    :func:`evaluate`, the ``AVVPMetrics`` Metric and ``avvp-eval`` all score through it.

    Probabilities as in :func:`binarize`; ``gt_audio``, ``gt_visual`` binary (N, 25, 10)
    (class-major, like the predictions). Returns int32 (N, 2, 3, 3, 25).
    """
    pred_audio, pred_visual = binarize(
        global_prob,
        a_prob,
        v_prob,
        frame_prob,
        gating=gating,
        video_threshold=video_threshold,
        segment_threshold=segment_threshold,
    )
    return avvp_counts(pred_audio, pred_visual, gt_audio, gt_visual)


# --------------------------------------------------------------------------- scores


def f_scores(counts: ArrayLike) -> Tensor:
    """Per-video score from per-class counts: macro F1 over qualifying classes.

    ``counts`` (..., 3, 25) with stat order TP, FP, FN. A class qualifies when
    TP + FP > 0 or TP + FN > 0; the score is the mean over qualifying classes of
    ``2TP / (2TP + FP + FN)``, or 1.0 when none qualifies. Returns float64 (...,).
    """
    c = _tensor(counts).to(torch.float64)
    tp, fp, fn = c.unbind(-2)
    denominator = 2 * tp + fp + fn
    qualifies = denominator > 0
    f1 = torch.where(qualifies, 2 * tp / denominator.clamp(min=1), 0.0)
    num = qualifies.sum(-1)
    return torch.where(num > 0, f1.sum(-1) / num.clamp(min=1), 1.0)


def scores_from_counts(counts: ArrayLike) -> Tensor:
    """Per-video scores (fractions) in ``METRIC_NAMES`` order from ``avvp_counts`` output.

    ``counts`` (N, 2, 3, 3, 25). Per level: A, V, AV scores, Type@AV (their mean) and
    Event@AV (the score of the audio and visual counts pooled per class).
    Returns float64 (N, 10).
    """
    c = _tensor(counts)
    per_modality = f_scores(c)  # (N, 2, 3)
    pooled = f_scores(c[:, :, 0] + c[:, :, 1])  # (N, 2)
    kind = per_modality.mean(-1, keepdim=True)
    return torch.cat((per_modality, kind, pooled[..., None]), dim=-1).reshape(len(c), -1)


def dataset_scores(video_scores: ArrayLike) -> dict[str, float]:
    """The ten reported numbers (percent) from per-video scores (N, 10).

    Each is 100 times the mean over videos; Type@AV is recomputed from the dataset A, V
    and AV means as the original code does.
    """
    scores = _tensor(video_scores).to(torch.float64)
    if scores.ndim != 2 or scores.shape[1] != len(METRIC_NAMES) or len(scores) == 0:
        raise ValueError(
            f"expected per-video scores (N>0, {len(METRIC_NAMES)}), got {tuple(scores.shape)}"
        )
    means = (100.0 * scores.mean(0)).tolist()
    result = dict(zip(METRIC_NAMES, means, strict=True))
    for level in LEVELS:
        a, v, av = (result[f"{level}_{m}"] for m in MODALITY_CODES)
        result[f"{level}_type"] = (av + a + v) / 3.0
    return result


def class_f1(counts: ArrayLike) -> dict[str, np.ndarray]:
    """Per-class F1 with counts pooled over videos, for each level and modality.

    ``counts`` (N, 2, 3, 3, 25). Returns ``{"seg_a": (25,), ..., "evt_av": (25,)}``
    float64 arrays; NaN for a class never predicted nor annotated.
    """
    totals = _tensor(counts).to(torch.float64).sum(0)  # (2, 3, 3, 25)
    tp, fp, fn = totals.unbind(-2)
    denominator = 2 * tp + fp + fn
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.nan)
    per_key = f1.flatten(0, 1)  # (level·modality, 25) in CLASS_F1_KEYS order
    return {key: per_key[i].cpu().numpy() for i, key in enumerate(CLASS_F1_KEYS)}


def evaluate(*outputs_and_labels: ArrayLike, **protocol: Any) -> dict[str, float]:
    """The ten numbers for one set of videos, straight from model outputs: the arguments
    of :func:`video_counts` (the four probability arrays, then ``gt_audio``,
    ``gt_visual`` class-major (N, 25, 10); ``gating`` and the thresholds by keyword)."""
    return dataset_scores(scores_from_counts(video_counts(*outputs_and_labels, **protocol)))


# --------------------------------------------------------------------------- protocol


def protocol_dict(
    *,
    gating: str = "global",
    video_threshold: float = 0.5,
    segment_threshold: float = 0.5,
    class_thresholds: Mapping[str, Sequence[float]] | None = None,
    split: str | None = None,
    audio_labels: str | None = None,
    annotation_files: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of the evaluation protocol, printed and saved with results.

    Numbers are only comparable under one stated protocol, so this names the gating (and
    which probabilities gate each modality), the thresholds, and optionally the split,
    the audio label version and the annotation files with their md5.
    """
    check_gating(gating)
    resolve_thresholds(
        video_threshold=video_threshold,
        segment_threshold=segment_threshold,
        class_thresholds=class_thresholds,
    )
    gate_audio, gate_visual = GATE_SOURCES[gating]
    protocol: dict[str, Any] = {
        "gating": gating,
        "gate_audio": gate_audio,
        "gate_visual": gate_visual,
        "video_threshold": float(video_threshold),
        "segment_threshold": float(segment_threshold),
        "class_thresholds": (
            None
            if class_thresholds is None
            else {key: [float(x) for x in values] for key, values in class_thresholds.items()}
        ),
        "comparison": ">=",
    }
    if split is not None:
        protocol["split"] = split
    if audio_labels is not None:
        protocol["audio_labels"] = audio_labels
    if annotation_files is not None:
        from avvp_lit.data.annotations import md5sum  # pandas: only when files are named

        protocol["annotations"] = {
            key: {"file": Path(path).name, "md5": md5sum(Path(path))}
            for key, path in annotation_files.items()
        }
    return protocol


def format_protocol(protocol: Mapping[str, Any]) -> str:
    """One human-readable line for a ``protocol_dict``."""
    parts = [
        f"gating {protocol['gating']} (audio gate {protocol['gate_audio']}, "
        f"visual gate {protocol['gate_visual']})",
        f"thresholds video {protocol['video_threshold']:g}, "
        f"segment {protocol['segment_threshold']:g} ({protocol['comparison']})",
    ]
    if protocol.get("class_thresholds"):
        parts.append(f"per-class thresholds for {', '.join(protocol['class_thresholds'])}")
    if "split" in protocol:
        parts.append(f"split {protocol['split']}")
    if "audio_labels" in protocol:
        parts.append(f"audio labels {protocol['audio_labels']}")
    for entry in protocol.get("annotations", {}).values():
        parts.append(f"{entry['file']} md5 {entry['md5']}")
    return "protocol: " + "; ".join(parts)


__all__ = [
    "GATE_SOURCES",
    "GATINGS",
    "METRIC_NAMES",
    "avvp_counts",
    "binarize",
    "class_f1",
    "dataset_scores",
    "evaluate",
    "format_protocol",
    "protocol_dict",
    "event_counts",
    "f_scores",
    "match_runs",
    "resolve_thresholds",
    "run_indicators",
    "scores_from_counts",
    "segment_counts",
    "video_counts",
]
