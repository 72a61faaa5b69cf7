"""`avvp-bench models`: training-step and inference throughput of HAN and MM-CSE.

    avvp-bench models [--device cpu|cuda] [--precision 32|bf16-mixed] [--compile]
        [--fused auto|true|false] [--features valor|han] [--batch-size 64] [--threads 2]
        [--json OUT]

Both networks run on inputs of one feature set (``--features``; VALOR, what MM-CSE is
trained on: audio (B, 64, 768), visual (B, 10, 768), visual_st (B, 10, 512); HAN: audio
(B, 10, 128), visual (B, 80, 2048), visual_st (B, 10, 512)), each with its own loss
(``loss=han`` / ``loss=mmcse``; random per-second pseudo labels are supplied so every
MM-CSE term runs). A training step is forward + loss + backward + AdamW step, under
autocast with ``--precision bf16-mixed``. The network is prepared exactly as a run
prepares it (``avvp_lit.engine.execution.prepare_network``: ``--fused auto`` picks the fused CPU
kernels on a CPU in float32 without compile, the plain blocks elsewhere; ``--compile``
compiles the network). Each model is measured in a fresh subprocess, so its peak memory
is its own (RSS on CPU; ``torch.cuda.max_memory_allocated`` on CUDA). Step times are
medians over ``--steps`` timed steps after ``--warmup`` untimed ones (which include the
compilation).

The work is counted too: ``train_gflop_per_video`` / ``infer_gflop_per_video`` are the
matrix-product FLOPs of one video's step (``torch.utils.flop_counter``, which counts
matmuls, convolutions and attention, not elementwise ops), and ``train_gflops`` the
rate the timed steps sustained.

JSON: ``{"han": {"train_videos_per_s", "infer_videos_per_s", "peak_rss_mb",
"peak_cuda_mb" (CUDA), "train_gflop_per_video", "train_gflops", "fused", ...},
"mmcse": {...}, "settings": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.utils.atomic import atomic_write_bytes

MODELS = ("han", "mmcse")
FLOP_COUNT_VIDEOS = 4


PRECISIONS = ("32", "bf16-mixed")


def _compose(model: str, features: str) -> Any:
    from avvp_lit.engine.config import compose_config

    return compose_config(
        None, [f"+model={model}", f"model/projection={features}", f"+loss={model}"]
    )


def _batch(batch_size: int, device: Any, features: str, seed: int = 0) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    def binary(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=g) < 0.15).float().to(device)

    shapes = FEATURE_SETS[features].input_shapes
    return {
        **{name: rand(batch_size, *shape) for name, shape in shapes.items()},
        "label": binary(batch_size, 25),
        "pl_audio": binary(batch_size, 10, 25),
        "pl_visual": binary(batch_size, 10, 25),
        "index": torch.arange(batch_size, device=device),
    }


def _timed(fn: Any, warmup: int, steps: int, sync: Any) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def count_gflop(fn: Any, videos: int) -> float:
    """Matrix-product GFLOP per video of ``fn()`` (which processes ``videos`` videos)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / videos / 1e9


def measure(
    model: str,
    *,
    batch_size: int,
    device: str,
    threads: int,
    warmup: int,
    steps: int,
    features: str = "valor",
    precision: str = "32",
    compile: bool = False,
    fused: str = "auto",
) -> dict[str, Any]:
    """Measure one model in this process (the worker side)."""
    import contextlib

    import hydra
    import torch
    from omegaconf import OmegaConf

    from avvp_lit.engine.execution import prepare_network
    from avvp_lit.models.fused import is_fused

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = _compose(model, features)
    dev = torch.device(device)
    network = hydra.utils.instantiate(cfg.model).to(dev)
    run_settings = {
        "compile": compile,
        "fused": {"auto": "auto", "true": True, "false": False}[fused],
        "trainer": {"accelerator": dev.type, "precision": precision},
    }
    prepare_network(network, OmegaConf.create(run_settings))
    loss_fn = hydra.utils.instantiate(cfg.loss).to(dev)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4, weight_decay=1e-3)
    batch = _batch(batch_size, dev, features)

    def autocast() -> Any:
        if precision == "bf16-mixed":
            return torch.autocast(dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def forward_backward(inputs: dict[str, Any]) -> None:
        with autocast():
            output = network(inputs["audio"], inputs["visual"], inputs["visual_st"])
            total = loss_fn(output, inputs)["total"]
        total.backward()

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        forward_backward(batch)
        optimizer.step()

    def infer_step() -> None:
        with torch.no_grad(), autocast():
            network(batch["audio"], batch["visual"], batch["visual_st"])

    # FLOPs are linear in the batch: count them on a few videos (AdamW has no products)
    few = {k: v[:FLOP_COUNT_VIDEOS] for k, v in batch.items()}
    videos = len(few["audio"])
    counted = hydra.utils.instantiate(cfg.model).to(dev)  # uncompiled: counted op by op
    counted.load_state_dict(network.state_dict())

    def counted_step() -> None:
        output = counted(few["audio"], few["visual"], few["visual_st"])
        loss_fn(output, few)["total"].backward()

    train_gflop = count_gflop(counted_step, videos)
    counted.eval()
    with torch.no_grad():
        infer_gflop = count_gflop(
            lambda: counted(few["audio"], few["visual"], few["visual_st"]), videos
        )
    network.train()
    train_times = _timed(train_step, warmup, steps, sync)
    network.eval()
    infer_times = _timed(infer_step, warmup, steps, sync)
    step = statistics.median(train_times)
    infer = statistics.median(infer_times)
    result = {
        "train_videos_per_s": batch_size / step,
        "infer_videos_per_s": batch_size / infer,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "train_gflop_per_video": train_gflop,
        "infer_gflop_per_video": infer_gflop,
        "train_gflops": train_gflop * batch_size / step,
        "infer_gflops": infer_gflop * batch_size / infer,
        "train_step_s": step,
        "infer_step_s": infer,
        "train_step_times_s": train_times,
        "parameters": sum(p.numel() for p in network.parameters()),
        "fused": is_fused(network),
    }
    if dev.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return result


def _run_worker(model: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "avvp_lit.bench.models",
        "--worker",
        model,
        "--batch-size",
        str(args.batch_size),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--warmup",
        str(args.warmup),
        "--steps",
        str(args.steps),
        "--features",
        args.features,
        "--precision",
        args.precision,
        "--fused",
        args.fused,
        *(["--compile"] if args.compile else []),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of {model} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avvp-bench models", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--features", default="valor", choices=tuple(FEATURE_SETS))
    parser.add_argument("--precision", default="32", choices=PRECISIONS)
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument(
        "--fused", default="auto", choices=("auto", "true", "false"), help="fused CPU kernels"
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        result = measure(
            args.worker,
            batch_size=args.batch_size,
            device=args.device,
            threads=args.threads,
            warmup=args.warmup,
            steps=args.steps,
            features=args.features,
            precision=args.precision,
            compile=args.compile,
            fused=args.fused,
        )
        print(json.dumps(result))
        return 0
    results: dict[str, Any] = {}
    for model in args.models:
        results[model] = _run_worker(model, args)
        r = results[model]
        memory = (
            f"peak CUDA {r['peak_cuda_mb']:7.0f} MB"
            if "peak_cuda_mb" in r
            else f"peak RSS {r['peak_rss_mb']:7.0f} MB"
        )
        print(
            f"{model:6s} {'fused' if r['fused'] else 'plain'}  "
            f"train {r['train_videos_per_s']:8.1f} videos/s  "
            f"infer {r['infer_videos_per_s']:8.1f} videos/s  {memory}  "
            f"train {r['train_gflop_per_video']:.3f} GFLOP/video at {r['train_gflops']:.1f} GFLOP/s"
        )
    if "han" in results and "mmcse" in results:
        han, mmcse = results["han"], results["mmcse"]
        ratio = mmcse["train_step_s"] / han["train_step_s"]
        flop_ratio = mmcse["train_gflop_per_video"] / han["train_gflop_per_video"]
        results["step_time_ratio"] = ratio
        results["flop_ratio"] = flop_ratio
        print(
            f"step time ratio MM-CSE / HAN: {ratio:.2f}  "
            f"(training FLOPs per video: {flop_ratio:.2f}x)"
        )
    results["settings"] = {
        "batch_size": args.batch_size,
        "device": args.device,
        "threads": args.threads,
        "warmup": args.warmup,
        "steps": args.steps,
        "features": args.features,
        "inputs": {
            name: [args.batch_size, *shape]
            for name, shape in FEATURE_SETS[args.features].input_shapes.items()
        },
        "precision": args.precision,
        "compile": args.compile,
        "fused": args.fused,
    }
    if args.json:
        atomic_write_bytes(args.json, json.dumps(results, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
