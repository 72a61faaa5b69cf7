"""Small hand-made dataset folders for tests: random features in the released layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avvp_lit.classes import CLASSES
from avvp_lit.data.features import FEATURE_SETS

HEADER_WEAK = "filename\tevent_labels\n"
HEADER_DENSE = "filename\tonset\toffset\tevent_labels\n"


def video_names(prefix: str, count: int) -> list[str]:
    """Filenames in the LLP pattern; ids begin with '-' or contain '_' like the real ones."""
    names = []
    for i in range(count):
        stem = f"{prefix}{i:03d}".ljust(11, "x")[:11]
        if i % 3 == 1:
            stem = "-" + stem[:10]
        if i % 3 == 2:
            stem = stem[:5] + "_" + stem[6:]
        start = 10 * i + (0.5 if i % 4 == 3 else 0)
        names.append(f"{stem}_{start:g}_{start + 10:g}")
    return names


def write_dataset(
    root: Path, feature_set: str = "han", sizes: tuple[int, int, int] = (8, 4, 4), seed: int = 0
) -> dict[str, list[str]]:
    """Write annotation files and npy features; returns the filenames per split."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    splits = {}
    dense_a, dense_v = [], []
    for (split, file), count, prefix in zip(
        [("train", "AVVP_train.csv"), ("val", "AVVP_val_pd.csv"), ("test", "AVVP_test_pd.csv")],
        sizes,
        "TVE",
        strict=True,
    ):
        names = video_names(prefix, count)
        splits[split] = names
        lines = []
        for name in names:
            classes = rng.choice(len(CLASSES), size=rng.integers(1, 4), replace=False)
            lines.append(f"{name}\t{','.join(CLASSES[c] for c in classes)}\n")
            if split != "train":
                for c in classes:
                    onset = int(rng.integers(0, 9))
                    offset = int(rng.integers(onset + 1, 11))
                    dense_a.append(f"{name}\t{onset}\t{offset}\t{CLASSES[c]}\n")
                    dense_v.append(f"{name}\t{0}\t{offset}\t{CLASSES[c]}\n")
        (root / file).write_text(HEADER_WEAK + "".join(lines))
    for file in ("AVVP_eval_audio.csv", "AVVP_eval_audio_pre2024.csv"):
        (root / file).write_text(HEADER_DENSE + "".join(dense_a))
    (root / "AVVP_eval_visual.csv").write_text(HEADER_DENSE + "".join(dense_v))
    all_names = [n for names in splits.values() for n in names]
    (root / "AVVP_dataset_full.csv").write_text(
        HEADER_WEAK + "".join(f"{n}\tSpeech\n" for n in all_names)
    )
    for modality in FEATURE_SETS[feature_set].modalities:
        folder = root / modality.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name in all_names:
            if modality.is_label:
                array = rng.integers(0, 2, size=modality.shape).astype(np.int64)
            else:
                array = rng.random(modality.shape, dtype=np.float32)
            np.save(folder / f"{name[:11]}.npy", array)
    return splits
