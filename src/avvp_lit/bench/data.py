"""`avvp-bench data`: videos/s served by each feature store on HAN-shaped features.

Writes a throw-away dataset of random HAN-shaped features (the heaviest set: ResNet-152
frames are 640 KB a video), packs it, then times one pass of a train DataLoader over the
npy layout and the HDF5 file, streaming with 0 and 2 workers, and from memory.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from avvp_lit.classes import CLASSES
from avvp_lit.data.annotations import SPLIT_FILES, WEAK_COLUMNS, feature_id
from avvp_lit.data.datamodule import LLPDataModule
from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.data.pack import pack
from avvp_lit.utils.atomic import atomic_write_bytes

FEATURE_SET = "han"


def write_random_features(root: Path, videos: int, seed: int = 0) -> None:
    """A train split of ``videos`` random videos in the released npy layout."""
    rng = np.random.default_rng(seed)
    names = [f"bench{i:06d}_{i}_{i + 10}" for i in range(videos)]
    root.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{n}\t{CLASSES[i % len(CLASSES)]}\n" for i, n in enumerate(names))
    for file in SPLIT_FILES.values():
        (root / file).write_text("\t".join(WEAK_COLUMNS) + "\n" + rows)
    for modality in FEATURE_SETS[FEATURE_SET].modalities:
        folder = root / modality.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            np.save(
                folder / f"{feature_id(name)}.npy", rng.random(modality.shape, dtype=np.float32)
            )


def time_pass(root: Path, *, store: str, in_memory: bool, workers: int, batch_size: int) -> float:
    """Videos per second for one full pass over the train split (set-up excluded)."""
    module = LLPDataModule(
        root=root,
        feature_set=FEATURE_SET,
        store=store,
        in_memory=in_memory,
        num_workers=workers,
        batch_size=batch_size,
        progress=False,
    )
    loader = module.train_dataloader()
    start = time.perf_counter()
    served = sum(len(batch["index"]) for batch in loader)
    return served / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avvp-bench data", description=__doc__)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--videos", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="avvp-bench-data-") as tmp:
        root = Path(tmp)
        write_random_features(root, args.videos)
        pack(root, root / "features.h5", progress=False)
        cases = [
            ("npy_workers0", "npy", False, 0),
            ("npy_workers2", "npy", False, 2),
            ("h5_workers0", "h5", False, 0),
            ("h5_workers2", "h5", False, 2),
            ("in_memory", "h5", True, 0),
        ]
        for name, store, in_memory, workers in cases:
            results[name] = time_pass(
                root, store=store, in_memory=in_memory, workers=workers, batch_size=args.batch_size
            )
            print(f"{name:>14}: {results[name]:9.1f} videos/s")
    payload = {"videos": args.videos, "feature_set": FEATURE_SET, "videos_per_s": results}
    if args.json:
        atomic_write_bytes(args.json, json.dumps(payload, indent=2).encode())
    return 0
