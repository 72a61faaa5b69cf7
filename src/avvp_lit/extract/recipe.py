"""VALOR's and HAN's feature recipes as data: rates, frame picks, prompts and thresholds.

Every value is cited to the file and lines of the original scripts it comes from
(Franklin905/VALOR at commit 60f3227a, "VALOR"; HAN's ``scripts/`` as kept in the fork
CarolineCheng233/AVVP-ECCV20 at 54ef83e0, "HAN", whose upstream copy is not stored).
docs/avvp.md §2.3 lists them with the decisions taken where the scripts are ambiguous.
"""

from __future__ import annotations

import numpy as np

from avvp_lit.classes import CLASSES, NUM_SEGMENTS

# VALOR utils/extract_frames.py:5-9 (`ffmpeg -i VIDEO -y -r 8 DST/%06d.jpg`), the same
# command as HAN scripts/extract_frames.py:9-16
FRAME_RATE = 8
# VALOR utils/clip_preprocess.py:64; HAN scripts/extract_3D_feat.py:36-37 (n_frame_steps 80)
CLIP_FRAMES = NUM_SEGMENTS
R2PLUS1D_FRAMES = 80
# HAN scripts/extract_3D_feat.py:83 (T, C, H, W = 8, 3, 112, 112)
R2PLUS1D_CLIP_LENGTH = 8
R2PLUS1D_SIZE = 112
# HAN scripts/utils.py:38-39 (Kinetics-400 statistics)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# VALOR utils/clip_preprocess.py:48 (the frame is resized to 224 x 224, no crop)
CLIP_SIZE = 224
CLIP_MODEL = "openai/clip-vit-large-patch14"
# VALOR utils/clap_preprocess.py:195 (librosa.load(..., sr=48000)), :198 (480,000 samples)
SAMPLE_RATE = 48_000
CLAP_SAMPLES = 480_000
# VALOR utils/clap_preprocess.py:241-242: CLAP_Module(enable_fusion=True), load_ckpt(model_id=2)
CLAP_CHECKPOINT = "630k-fusion-best.pt"
CLAP_AUDIO_MODEL = "HTSAT-tiny"
# LLP clips are 10 s (VALOR utils/download_dataset.py:26-41: t_end = t_start + 10)
WINDOW_S = 10.0

# VALOR utils/clip_preprocess.py:230-234, verbatim (typos included), in CLASSES order
CLIP_PROMPTS: tuple[str, ...] = (
    "A photo of people talking.",
    "A photo of a car.",
    "A photo of people cheering.",
    "A photo of a dog.",
    "A photo of a cat.",
    "A photo of frying food.",
    "A photo of people playing basketball.",
    "A photo of a fire alarm.",
    "A photo of a chainsaw.",
    "A photo of a cello.",
    "A photo of a banjo.",
    "A photo of people singing.",
    "A photo of a chicken or a rooster.",
    "A photo of a violin.",
    "A photo of a vaccum cleaner.",
    "A photo of a laughing baby.",
    "A photo of an accordion.",
    "A photo of a lawnmower.",
    "A photo of a motorcycle.",
    "A photo of a helicopter.",
    "A photo of a acoustic guiter.",
    "A photo of a ringing telephone.",
    "A photo of a crying baby.",
    "A photo of a blender.",
    "A photo of hands clapping.",
)
# VALOR utils/clip_preprocess.py:236-238: a segment is visible when logits_per_image > t
CLIP_THRESHOLDS = np.array(
    [20, 15, 18, 14, 15, 18, 18, 15, 15, 15, 15, 18, 15, 15, 15, 15, 15, 15, 15, 16]
    + [14, 15, 15, 15, 18],
    dtype=np.float32,
)
# VALOR utils/clap_preprocess.py:254-260: "This is a sound of " + the class name, lower case
_CLAP_NAMES = (
    "Speech",
    "Car",
    "Cheering",
    "Dog",
    "Cat",
    "Frying (food)",
    "Basketball bounce",
    "Fire alarm",
    "Chainsaw",
    "Cello",
    "Banjo",
    "Singing",
    "Chicken, rooster",
    "Violin fiddle",
    "Vacuum cleaner",
    "Baby laughter",
    "Accordion",
    "Lawn mower",
    "Motorcycle",
    "Helicopter",
    "Acoustic guitar",
    "Telephone bell ringing",
    "Baby cry, infant cry",
    "Blender",
    "Clapping",
)
CLAP_PROMPTS: tuple[str, ...] = tuple("This is a sound of " + n.lower() for n in _CLAP_NAMES)
# VALOR utils/clap_preprocess.py:262-264: audible when exp(logit_scale_a) * cos > t
CLAP_THRESHOLDS = np.array(
    [0, 0, 1, 4, 6, -2, 4, 4, 2, 2, 2, 1, 2, 3, 0, 2, 2, 2, 0, 2, -1, 2, 3, 3, 0],
    dtype=np.float32,
)
assert len(CLIP_PROMPTS) == len(CLAP_PROMPTS) == len(CLASSES) == CLIP_THRESHOLDS.size


def spread_indices(available: int, wanted: int) -> np.ndarray:
    """``wanted`` indices spread evenly over ``available`` items, first and last included:
    ``np.round(np.linspace(0, N - 1, K))`` (VALOR utils/clip_preprocess.py:64, HAN
    scripts/extract_3D_feat.py:36-37). Fewer items than wanted repeat some. (K,) int64."""
    if available < 1:
        raise ValueError("no frames to pick from")
    return np.round(np.linspace(0, available - 1, wanted)).astype(np.int64)


def stretch_indices(available: int, wanted: int) -> np.ndarray:
    """Nearest-sample resampling of a waveform to ``wanted`` samples, as VALOR brings every
    clip's audio to 480,000 samples (utils/clap_preprocess.py:197-199): a shorter clip is
    stretched (samples repeated), a longer one thinned. (wanted,) int32."""
    return np.round(np.linspace(0, available - 1, wanted)).astype(np.int32)


def second_chunks(length: int) -> list[slice]:
    """The ten one-second chunks VALOR scores for CLAP pseudo labels
    (utils/clap_preprocess.py:88-95): chunk i starts at round(i * L / 10) and holds L // 10
    samples of the waveform as loaded (not stretched)."""
    starts = np.round(np.linspace(0, length, NUM_SEGMENTS + 1)).astype(np.int32)[:-1]
    step = length // NUM_SEGMENTS
    return [slice(int(s), int(s) + step) for s in starts]


def quantize_int16(waveform: np.ndarray) -> np.ndarray:
    """The int16 round trip laion-clap and VALOR apply before CLAP (VALOR
    utils/clap_utils.py:12-17): clip to [-1, 1], scale by 32767, truncate, scale back."""
    clipped = np.clip(waveform, -1.0, 1.0)
    return ((clipped * 32767.0).astype(np.int16) / 32767.0).astype(np.float32)


def segment_pseudo_labels(
    logits: np.ndarray, thresholds: np.ndarray, weak_label: np.ndarray
) -> np.ndarray:
    """Per-second pseudo labels from per-second class logits (VALOR
    utils/clip_preprocess.py:106-125, the same function in clap_preprocess.py:121-140):
    1 where the logit exceeds the class threshold (strictly) and the class is in the video's
    weak label, else 0. logits (10, 25), thresholds (25,), weak_label (25,) -> (10, 25) int64.
    """
    above = logits > thresholds[None, :]
    return (above & (weak_label[None, :] > 0)).astype(np.int64)
