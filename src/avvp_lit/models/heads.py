"""Prediction heads and attentive MMIL pooling.

A head block maps the enhanced features to three logit tensors (B, T, 2, K): per-second
event logits, temporal-attention logits and modality-attention logits.
:class:`MMILPooling` (HAN's attentive multimodal multiple-instance pooling, used by both
networks) turns them into the video-level and per-second probabilities.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from avvp_lit.models.precision import float32_forward


class HeadLogits(NamedTuple):
    """Three (B, T, 2, K) tensors; modality axis index 0 audio, 1 visual."""

    frame: torch.Tensor  # per-second event logits
    time: torch.Tensor  # temporal attention logits (softmax over T)
    modality: torch.Tensor  # modality attention logits (softmax over the 2 modalities)


class ClassSpecificHeads(nn.Module):
    """MM-CSE's heads: for each of the 3 heads, one Linear(d, 1) per class, class k reading
    only its own token (docs/avvp.md §5.4).

    weight (3, K, d), bias (3, K) in the order ``prob, frame_att, av_att``; all 75 dot
    products are one matrix product. Input z (2, B, T, K, d) (modality-stacked).
    """

    def __init__(self, *, dim: int, num_classes: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(3, num_classes, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(3, num_classes).uniform_(-bound, bound))

    def forward(self, z: torch.Tensor) -> HeadLogits:
        m, b, t, k, d = z.shape
        # Block-diagonal (K·d, 3K) matrix: class k's d-block feeds only its 3 logits. One
        # GEMM (25× the minimal multiply-adds, still ~1% of the network) instead of 75 dot
        # products or a batched matmul with 3 output columns, which BLAS runs poorly.
        eye = torch.eye(k, dtype=z.dtype, device=z.device)
        block = torch.einsum("hkd,kj->kdhj", self.weight, eye).reshape(k * d, 3 * k)
        logits = torch.addmm(self.bias.reshape(-1), z.reshape(m * b * t, k * d), block)
        logits = logits.view(m, b, t, 3, k).permute(3, 1, 2, 0, 4)  # (3, B, T, 2, K)
        return HeadLogits(logits[0], logits[1], logits[2])


class SharedHeads(nn.Module):
    """HAN's heads: three Linear(H, K) shared by all classes. Input z (2, B, T, H)."""

    def __init__(self, *, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc_prob = nn.Linear(dim, num_classes)
        self.fc_frame_att = nn.Linear(dim, num_classes)
        self.fc_av_att = nn.Linear(dim, num_classes)

    def forward(self, z: torch.Tensor) -> HeadLogits:
        x = z.permute(1, 2, 0, 3)  # (B, T, 2, H)
        return HeadLogits(self.fc_prob(x), self.fc_frame_att(x), self.fc_av_att(x))


class MMILPooling(nn.Module):
    """Attentive MMIL pooling (HAN; docs/avvp.md §4).

    ``frame_prob = sigmoid(frame)``, ``frame_att = softmax_T(time)``,
    ``av_att = softmax_modality(modality)``;
    ``global_prob = Σ_t Σ_m frame_att·frame_prob·av_att``,
    ``a_prob = Σ_t (frame_att·frame_prob)[audio]``, ``v_prob`` likewise.
    Takes the three :class:`HeadLogits` tensors (``pooling(*logits)``); returns a dict of
    ``global_prob``, ``a_prob``, ``v_prob`` (B, K), ``frame_prob`` (B, T, 2, K). Always in
    float32 (also under bf16 autocast): these are the probabilities that are thresholded.
    """

    @float32_forward
    def forward(
        self, frame: torch.Tensor, time: torch.Tensor, modality: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        frame_prob = torch.sigmoid(frame)  # (B, T, 2, K)
        frame_att = F.softmax(time, dim=1)  # over T
        av_att = F.softmax(modality, dim=2)  # over modalities
        temporal = frame_att * frame_prob  # (B, T, 2, K)
        return {
            "global_prob": (temporal * av_att).sum(dim=2).sum(dim=1),  # (B, K)
            "a_prob": temporal[:, :, 0].sum(dim=1),
            "v_prob": temporal[:, :, 1].sum(dim=1),
            "frame_prob": frame_prob,
        }
