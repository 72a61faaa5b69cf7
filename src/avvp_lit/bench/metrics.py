"""`avvp-bench metrics`: seconds to score a test-set-sized batch with the AVVP protocol.

Times the full protocol (binarise, segment and event counts, all ten scores) on random
predictions and ground truth for ``--videos`` videos, once through the pure functions
and once through ``AVVPMetrics`` (reset, update, compute), after one warm-up run.
Reports medians over ``--repeats`` runs; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from avvp_lit.classes import NUM_CLASSES, NUM_SEGMENTS
from avvp_lit.metrics import GATINGS, AVVPMetrics, evaluate
from avvp_lit.utils.atomic import atomic_write_bytes


def random_case(videos: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Model-shaped random outputs and sparse-ish ground truth for ``videos`` videos.

    Probabilities are uniform (many short predicted runs, the costly case for event
    matching); ground truth has ~20% positive seconds.
    """
    gen = torch.Generator().manual_seed(seed)
    shape = (videos, NUM_SEGMENTS, NUM_CLASSES)
    return {
        "global_prob": torch.rand(videos, NUM_CLASSES, generator=gen),
        "a_prob": torch.rand(videos, NUM_CLASSES, generator=gen),
        "v_prob": torch.rand(videos, NUM_CLASSES, generator=gen),
        "frame_prob": torch.rand(videos, NUM_SEGMENTS, 2, NUM_CLASSES, generator=gen),
        "gt_audio": (torch.rand(shape, generator=gen) < 0.2).to(torch.uint8),
        "gt_visual": (torch.rand(shape, generator=gen) < 0.2).to(torch.uint8),
        "index": torch.arange(videos),
    }


def median_seconds(run: Callable[[], object], *, repeats: int) -> float:
    """Median wall time of ``run`` over ``repeats`` calls, after one warm-up call.

    Both timed paths end in Python floats, so device work is finished when a call returns.
    """
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(
    *,
    videos: int,
    repeats: int,
    gating: str,
    batch_size: int,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, float | int | str]:
    """Time both paths on one random case; returns the JSON-ready figures."""
    case = {key: value.to(device) for key, value in random_case(videos, seed=seed).items()}
    metric = AVVPMetrics(gating=gating).to(device)

    def functional() -> dict[str, float]:
        return evaluate(
            case["global_prob"],
            case["a_prob"],
            case["v_prob"],
            case["frame_prob"],
            case["gt_audio"].transpose(1, 2),
            case["gt_visual"].transpose(1, 2),
            gating=gating,
        )

    def metric_run() -> dict[str, float]:
        metric.reset()
        for start in range(0, videos, batch_size):
            metric.update(*(value[start : start + batch_size] for value in case.values()))
        return metric.compute()

    same = functional() == metric_run()
    return {
        "videos": videos,
        "gating": gating,
        "batch_size": batch_size,
        "repeats": repeats,
        "device": device,
        "threads": torch.get_num_threads(),
        "metric_seconds": median_seconds(metric_run, repeats=repeats),
        "functional_seconds": median_seconds(functional, repeats=repeats),
        "paths_agree": same,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avvp-bench metrics", description=__doc__)
    parser.add_argument("--videos", type=int, default=1200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gating", choices=GATINGS, default="global")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="videos per Metric.update (default: all)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.videos < 1 or args.repeats < 1:
        parser.error("--videos and --repeats must be positive")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    figures = bench(
        videos=args.videos,
        repeats=args.repeats,
        gating=args.gating,
        batch_size=args.batch_size or args.videos,
        device=args.device,
        seed=args.seed,
    )
    for key, value in figures.items():
        print(f"{key:>18}: {value:.4f}" if isinstance(value, float) else f"{key:>18}: {value}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.json, (json.dumps(figures, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
