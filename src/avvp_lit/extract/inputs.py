"""One window's frames and audio turned into each model's input, step by step as the
original scripts prepare them (cited per function; docs/avvp.md §2.3).

Runs in the DataLoader workers beside the models, so it is numpy, PIL and plain torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from avvp_lit.extract.recipe import (
    CLAP_SAMPLES,
    CLIP_FRAMES,
    CLIP_SIZE,
    KINETICS_MEAN,
    KINETICS_STD,
    R2PLUS1D_CLIP_LENGTH,
    R2PLUS1D_FRAMES,
    R2PLUS1D_SIZE,
    WINDOW_S,
    quantize_int16,
    second_chunks,
    spread_indices,
    stretch_indices,
)


def clip_pixels(frames: np.ndarray, mean: tuple, std: tuple) -> torch.Tensor:
    """CLIP's input (VALOR utils/clip_preprocess.py:48-54, 63-71): 10 frames spread over
    the window, scaled to [0, 1], resized to 224 x 224 on the tensor (bilinear, no crop and,
    as torchvision 0.13 did for tensors, no antialiasing), normalised with CLIP's mean/std.
    frames (N, H, W, 3) uint8 -> (10, 3, 224, 224) float32."""
    picked = torch.from_numpy(frames[spread_indices(len(frames), CLIP_FRAMES)])
    pixels = picked.permute(0, 3, 1, 2).float() / 255.0  # (10, 3, H, W)
    pixels = F.interpolate(
        pixels, size=(CLIP_SIZE, CLIP_SIZE), mode="bilinear", align_corners=False, antialias=False
    )
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (pixels - mean_t) / std_t


def r2plus1d_clips(frames: np.ndarray) -> torch.Tensor:
    """R(2+1)D's input (HAN scripts/extract_3D_feat.py:36-47, scripts/utils.py:36-52): 80
    frames spread over the window, each resized to 112 x 112 by PIL (bilinear, no crop),
    scaled to [0, 1] and normalised with the Kinetics statistics, in 10 clips of 8.
    frames (N, H, W, 3) uint8 -> (10, 3, 8, 112, 112) float32."""
    size = (R2PLUS1D_SIZE, R2PLUS1D_SIZE)
    small = np.stack(
        [
            np.asarray(Image.fromarray(frames[i]).resize(size, Image.BILINEAR))
            for i in spread_indices(len(frames), R2PLUS1D_FRAMES)
        ]
    )  # (80, 112, 112, 3) uint8
    pixels = torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255.0  # (80, 3, 112, 112)
    mean_t = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1)
    std_t = torch.tensor(KINETICS_STD).view(1, 3, 1, 1)
    pixels = (pixels - mean_t) / std_t
    clips = pixels.view(-1, R2PLUS1D_CLIP_LENGTH, 3, R2PLUS1D_SIZE, R2PLUS1D_SIZE)
    return clips.permute(0, 2, 1, 3, 4).contiguous()  # (10, 3, 8, 112, 112)


def clap_feature_waveform(audio: np.ndarray) -> np.ndarray:
    """The waveform VALOR's CLAP feature map is taken from (utils/clap_preprocess.py:197-201):
    the window's audio resampled by nearest sample to exactly 480,000 samples, then the
    int16 round trip. (S,) -> (480000,) float32."""
    return quantize_int16(audio[stretch_indices(len(audio), CLAP_SAMPLES)])


def repeat_pad(waveform: np.ndarray, length: int = CLAP_SAMPLES) -> np.ndarray:
    """laion-clap's ``repeatpad`` filling (training/data.py, get_audio_features): the
    waveform tiled a whole number of times, then zeros up to ``length``."""
    tiled = np.tile(waveform, length // len(waveform))
    return np.pad(tiled, (0, length - len(tiled))).astype(np.float32)


def clap_label_waveforms(audio: np.ndarray) -> np.ndarray:
    """The ten one-second chunks VALOR scores against the CLAP prompts
    (utils/clap_preprocess.py:88-97), each int16 round-tripped and repeat-padded to
    480,000 samples as laion-clap's get_audio_embedding_from_data does.
    (S,) -> (10, 480000) float32."""
    return np.stack([repeat_pad(quantize_int16(audio[s])) for s in second_chunks(len(audio))])


@dataclass
class WindowInputs:
    """Everything the models need for one window (10 s of one video)."""

    id: str
    source: str
    start: float
    end: float
    frame_count: int  # frames at 8 fps
    clip: torch.Tensor  # (10, 3, 224, 224)
    r2plus1d: torch.Tensor  # (10, 3, 8, 112, 112)
    clap: np.ndarray  # (480000,)
    clap_chunks: np.ndarray | None  # (10, 480000) when pseudo labels are wanted

    @property
    def short(self) -> bool:
        """Shorter than an LLP clip: its 10 segments are stretched over it."""
        return self.end - self.start < WINDOW_S - 1e-6
