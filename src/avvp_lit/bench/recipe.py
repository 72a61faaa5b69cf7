"""`avvp-bench recipe`: the published MM-CSE recipe's epoch loop, timed and projected.

    avvp-synth data/synthetic_valor_llp --features valor --size llp   # 10,000 / 649 / 1,200
    avvp-bench recipe --data data/synthetic_valor_llp [--device cpu|cuda]
        [--precision 32|bf16-mixed] [--compile] [--fused auto|true|false]
        [--train-batches 10] [--epochs 60] [--threads 2] [--json OUT]

It runs ``avvp-train experiment=mmcse_llp`` (batch 64, AdamW, StepLR, clipping, full
validation with the exact metrics every epoch) through the real Lightning loop on the
in-memory dataset, which on CUDA lives on the GPU (``data.on_device=auto``). Epoch 1 is
the warm-up (it includes compilation); epoch 2 is timed: ``--train-batches`` training
steps (0: the whole epoch) and the whole validation pass. The projection of ``--epochs``
epochs is ``setup + epochs x (steps per epoch x step time + validation time)``, where
setup is loading the data and moving the model.

JSON: ``{"setup_s", "warmup_epoch_s", "train_step_s", "train_videos_per_s",
"validation_s", "epoch_s", "projected_s", "split_sizes", "settings"}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from avvp_lit.bench.models import PRECISIONS
from avvp_lit.data.synthetic import COMPLETE_MARKER
from avvp_lit.utils.atomic import atomic_write_bytes

MEASURED_EPOCH = 1


class EpochLoopTimer(L.Callback):
    """Wall times of the timed epoch's training steps and validation pass (synchronised
    with the device at each boundary), and of the warm-up epoch."""

    def __init__(self, *, timed_epoch: int) -> None:
        self.timed_epoch = timed_epoch
        self.times: dict[str, float] = {}
        self.steps = 0
        self.train_start = 0.0  # perf_counter at the start of fitting (after setup)
        self._marks: dict[str, float] = {}

    def _now(self, trainer: L.Trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)
        return time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_start = self._now(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._marks[f"epoch{trainer.current_epoch}"] = self._now(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.current_epoch == self.timed_epoch:
            self.steps += 1
            self._marks["last_step"] = self._now(trainer)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._marks["validation"] = self._now(trainer)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        now = self._now(trainer)
        epoch = trainer.current_epoch
        if epoch == self.timed_epoch - 1:
            self.times["warmup_epoch_s"] = now - self._marks[f"epoch{epoch}"]
        if epoch == self.timed_epoch:
            self.times["train_s"] = self._marks["last_step"] - self._marks[f"epoch{epoch}"]
            self.times["validation_s"] = now - self._marks["validation"]


def recipe_config(args: argparse.Namespace) -> DictConfig:
    """``avvp-train experiment=mmcse_llp`` on ``--data``, with the bench's execution
    settings and no logger, checkpoint, figures or progress bar."""
    from avvp_lit.engine.config import compose_config

    overrides = [
        "experiment=mmcse_llp",
        f"data.root={args.data}",
        "data.in_memory=true",
        "data.num_workers=0",
        "data.progress=false",
        "logger=none",
        f"trainer={'gpu' if args.device == 'cuda' else 'cpu'}",
        f"trainer.precision={args.precision}",
        f"trainer.max_epochs={MEASURED_EPOCH + 1}",
        f"trainer.limit_train_batches={args.train_batches or 1.0}",
        "+trainer.enable_checkpointing=false",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
        f"compile={str(args.compile).lower()}",
        f"fused={args.fused}",
    ]
    cfg = compose_config("train", overrides)
    OmegaConf.set_struct(cfg, False)
    cfg.callbacks = None
    cfg.paths.output_dir = str(args.output)
    return cfg


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import hydra

    from avvp_lit.engine.builders import build_module
    from avvp_lit.engine.validation import validate_config

    torch.set_num_threads(args.threads)
    cfg = recipe_config(args)
    validate_config(cfg)
    L.seed_everything(cfg.seed, workers=True)
    start = time.perf_counter()
    datamodule = hydra.utils.instantiate(cfg.data)
    module = build_module(cfg)
    timer = EpochLoopTimer(timed_epoch=MEASURED_EPOCH)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[timer], logger=False)
    trainer.fit(module, datamodule=datamodule)
    setup_s = timer.train_start - start
    sizes = {split: len(datamodule.split(split)) for split in ("train", "val")}
    steps_per_epoch = math.ceil(sizes["train"] / cfg.data.batch_size)
    step_s = timer.times["train_s"] / timer.steps
    epoch_s = steps_per_epoch * step_s + timer.times["validation_s"]
    return {
        "setup_s": setup_s,
        "warmup_epoch_s": timer.times["warmup_epoch_s"],
        "train_step_s": step_s,
        "timed_steps": timer.steps,
        "train_videos_per_s": cfg.data.batch_size / step_s,
        "validation_s": timer.times["validation_s"],
        "epoch_s": epoch_s,
        "projected_s": setup_s + args.epochs * epoch_s,
        "split_sizes": sizes,
        "steps_per_epoch": steps_per_epoch,
        "peak_cuda_mb": (
            torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None
        ),
        "settings": {
            "device": args.device,
            "precision": args.precision,
            "compile": args.compile,
            "fused": args.fused,
            "epochs": args.epochs,
            "batch_size": int(cfg.data.batch_size),
            "threads": args.threads,
            "data": str(args.data),
        },
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avvp-bench recipe", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="an avvp-synth --size llp root")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="32", choices=PRECISIONS)
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--fused", default="auto", choices=("auto", "true", "false"))
    parser.add_argument(
        "--train-batches", type=int, default=10, help="timed training steps (0: a whole epoch)"
    )
    parser.add_argument("--epochs", type=int, default=60, help="epochs to project")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument("--output", type=Path, default=Path("outputs/bench/recipe"))
    parser.add_argument("--json", type=Path, help="write the results here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.train_batches < 0:
        print("avvp-bench recipe: --train-batches must be 0 (whole epoch) or more", file=sys.stderr)
        return 2
    if not (args.data / COMPLETE_MARKER).exists() and not (args.data / "features.h5").exists():
        print(
            f"avvp-bench recipe: {args.data} holds no dataset; make one with "
            f"`avvp-synth {args.data} --features valor --size llp`",
            file=sys.stderr,
        )
        return 2
    r = measure(args)
    sizes = r["split_sizes"]
    print(
        f"MM-CSE recipe on {sizes['train']} train / {sizes['val']} val videos, "
        f"{args.device} {args.precision}{' compiled' if args.compile else ''}: "
        f"setup {r['setup_s']:.1f} s, warm-up epoch {r['warmup_epoch_s']:.1f} s"
    )
    print(
        f"  train step {r['train_step_s'] * 1e3:.1f} ms ({r['train_videos_per_s']:.1f} videos/s, "
        f"{r['timed_steps']} steps timed), validation {r['validation_s']:.2f} s, "
        f"epoch {r['epoch_s']:.1f} s"
    )
    print(f"  projected {args.epochs} epochs: {r['projected_s'] / 60:.1f} min")
    if args.json:
        atomic_write_bytes(args.json, json.dumps(r, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
