"""A deliberately simple loop-per-video reference of the AVVP protocol.

Written straight from ``docs/avvp.md`` §3 with plain Python lists and exact fractions,
sharing no code with ``avvp_lit.metrics``. ``tests/test_metrics_reference.py`` pins it
to hand-computed numbers; the other metric tests compare the vectorised implementation
with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

HALF = Fraction(1, 2)
Counts = tuple[int, int, int]


def ref_runs(sequence: Sequence[int]) -> list[tuple[int, int]]:
    """Maximal runs of positive seconds as half-open (start, end) pairs."""
    runs, start = [], None
    for t, value in enumerate([*list(sequence), 0]):
        if value and start is None:
            start = t
        elif not value and start is not None:
            runs.append((start, t))
            start = None
    return runs


def ref_iou(a: tuple[int, int], b: tuple[int, int]) -> Fraction:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    if inter <= 0:
        return Fraction(0)
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return Fraction(inter, union)


def ref_segment_counts(pred: Sequence[int], gt: Sequence[int]) -> Counts:
    tp = sum(1 for p, g in zip(pred, gt, strict=True) if p and g)
    fp = sum(1 for p, g in zip(pred, gt, strict=True) if p and not g)
    fn = sum(1 for p, g in zip(pred, gt, strict=True) if not p and g)
    return tp, fp, fn


def ref_event_counts(pred: Sequence[int], gt: Sequence[int]) -> Counts:
    pred_events, gt_events = ref_runs(pred), ref_runs(gt)
    tp = fp = fn = 0
    for p in pred_events:
        if any(ref_iou(p, g) >= HALF for g in gt_events):
            tp += 1
        else:
            fp += 1
    for g in gt_events:
        if not any(ref_iou(p, g) >= HALF for p in pred_events):
            fn += 1
    return tp, fp, fn


def ref_score(counts: Sequence[Counts]) -> float:
    """Mean F1 over classes with TP+FP > 0 or TP+FN > 0; 1.0 when there is none."""
    scores = []
    for tp, fp, fn in counts:
        if tp + fp > 0 or tp + fn > 0:
            scores.append(Fraction(2 * tp, 2 * tp + fp + fn))
    if not scores:
        return 1.0
    return float(sum(scores) / len(scores))


def ref_video_counts(pa, pv, ga, gv) -> dict[str, list[Counts]]:
    """Per-class counts of one video, keyed "<seg|evt>_<a|v|av>"; inputs (25, T) 0/1."""
    pav = [[x * y for x, y in zip(a, v, strict=True)] for a, v in zip(pa, pv, strict=True)]
    gav = [[x * y for x, y in zip(a, v, strict=True)] for a, v in zip(ga, gv, strict=True)]
    out = {}
    for level, counter in (("seg", ref_segment_counts), ("evt", ref_event_counts)):
        for modality, pred, gt in (("a", pa, ga), ("v", pv, gv), ("av", pav, gav)):
            out[f"{level}_{modality}"] = [counter(pred[c], gt[c]) for c in range(len(pred))]
    return out


def ref_video_scores(pa, pv, ga, gv) -> list[float]:
    """The ten per-video scores (fractions) in METRIC_NAMES order; inputs (25, T) 0/1."""
    counts = ref_video_counts(pa, pv, ga, gv)
    out = []
    for level in ("seg", "evt"):
        a, v, av = (ref_score(counts[f"{level}_{m}"]) for m in ("a", "v", "av"))
        pooled = [
            (x[0] + y[0], x[1] + y[1], x[2] + y[2])
            for x, y in zip(counts[f"{level}_a"], counts[f"{level}_v"], strict=True)
        ]
        out += [a, v, av, (a + v + av) / 3, ref_score(pooled)]
    return out


def ref_binarize(global_prob, a_prob, v_prob, frame_prob, gating, video_thr, segment_thr):
    """One video: (25,), (25,), (25,), (10, 2, 25) probabilities -> audio, visual (25, 10)."""
    num_classes, num_segments = len(global_prob), len(frame_prob)
    pa = [[0] * num_segments for _ in range(num_classes)]
    pv = [[0] * num_segments for _ in range(num_classes)]
    for c in range(num_classes):
        overall = global_prob[c] >= video_thr[c]
        if gating == "global":
            gate_a, gate_v = overall, overall
        elif gating == "modality":
            gate_a, gate_v = a_prob[c] >= video_thr[c], v_prob[c] >= video_thr[c]
        elif gating == "mmcse":
            gate_a, gate_v = overall, v_prob[c] >= video_thr[c]
        else:
            raise ValueError(gating)
        for t in range(num_segments):
            pa[c][t] = int(gate_a and frame_prob[t][0][c] >= segment_thr[0][c])
            pv[c][t] = int(gate_v and frame_prob[t][1][c] >= segment_thr[1][c])
    return pa, pv


PROBABILITY_KEYS = ("global_prob", "a_prob", "v_prob", "frame_prob")


def ref_per_video_scores(probs, gt_audio, gt_visual, gating, video_thr=None, segment_thr=None):
    """``ref_binarize`` then ``ref_video_scores`` for each video.

    ``probs``: the four prediction arrays by name, videos first; ``gt_audio``/``gt_visual``:
    per video a (K, T) nested list. Thresholds default to 0.5 for every class.
    """
    classes = len(gt_audio[0]) if len(gt_audio) else 0
    video_thr = [0.5] * classes if video_thr is None else video_thr
    segment_thr = [[0.5] * classes] * 2 if segment_thr is None else segment_thr
    scores = []
    for v in range(len(gt_audio)):
        pa, pv = ref_binarize(
            *(probs[n][v].tolist() for n in PROBABILITY_KEYS), gating, video_thr, segment_thr
        )
        scores.append(ref_video_scores(pa, pv, gt_audio[v], gt_visual[v]))
    return scores


def ref_dataset_scores(per_video: Sequence[Sequence[float]]) -> list[float]:
    """Percent means over videos in METRIC_NAMES order."""
    n = len(per_video)
    return [100.0 * sum(row[i] for row in per_video) / n for i in range(10)]


# ----------------------------------------------------------------- checks of the reference
