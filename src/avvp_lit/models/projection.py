"""Input projections: released feature arrays -> one (B, T, H) feature per modality.

Each modality's path is its own small block, chosen by config
(``conf/model/projection/{han,valor}.yaml`` write the input sizes of the feature sets):

- :class:`LinearProjection`: features already at one vector per second (VGGish audio
  (B, 10, 128), CLIP visual (B, 10, 768)) -> ``fc``;
- :class:`FramePooledProjection`: ResNet-152 frames at 8 fps (B, 80, 2048) -> the mean
  of each 8 consecutive frames -> ``fc`` (the original's fc-then-mean, reordered);
- :class:`ClapMapProjection`: the LAION-CLAP HTSAT feature map (B, 64, 768) -> MM-CSE's
  resize / per-position ``fc`` / pooling path (docs/avvp.md §5.1);
- :class:`MotionFusion`: ``fc_st`` on the R(2+1)D clip features and ``fc_fusion`` of the
  concatenation with the visual path's output.
:class:`InputProjection` runs the three and returns ``(x_a, x_v)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinearProjection(nn.Module):
    """One Linear per time step: (B, T, in_dim) -> (B, T, out_dim)."""

    def __init__(self, *, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)  # (B, T, out_dim)


class FramePooledProjection(nn.Module):
    """Frame features at several frames per second, averaged per second and projected.

    (B, T·f, in_dim) -> mean of each f consecutive frames -> ``fc`` -> (B, T, out_dim).
    HAN and MM-CSE apply ``fc`` to every frame and average afterwards; an affine map
    commutes with a mean, so averaging first is the same function (agreement ~1e-7 in
    float32) with 1/f of the ``fc`` work: at f = 8 and in_dim 2048 the frame-level
    ``fc`` was about half of HAN's training FLOPs. :meth:`reference_forward` is the original
    order, kept for tests.
    """

    def __init__(self, *, in_dim: int, out_dim: int, frames_per_segment: int = 8) -> None:
        super().__init__()
        self.frames_per_segment = frames_per_segment
        self.fc = nn.Linear(in_dim, out_dim)

    def _segments(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T·f, C) -> (B, T, f, C)."""
        b, n, c = x.shape
        return x.view(b, n // self.frames_per_segment, self.frames_per_segment, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self._segments(x).mean(2))  # (B, T, out)

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``fc`` on every frame, then the per-second mean (the original order)."""
        return self._segments(self.fc(x)).mean(2)


def clap_resampling_matrix(
    map_size: tuple[int, int], resize: tuple[int, int], num_segments: int
) -> torch.Tensor:
    """The (num_segments, h·w) matrix equal to MM-CSE's resize -> mean -> pool chain.

    The chain (bicubic resize of the (h, w) map to ``resize``, mean over the first axis,
    adaptive average pooling of the second to ``num_segments``) is linear in the map
    and acts on every channel alike, so it is one matrix over the h·w positions; its
    rows sum to 1, so it commutes with an affine ``fc``. Computed in float64 by pushing
    the identity through the exact torch operations.
    """
    h, w = map_size
    positions = h * w
    basis = torch.eye(positions, dtype=torch.float64).view(1, positions, h, w)  # C = position
    resized = F.interpolate(basis, size=tuple(resize), mode="bicubic", align_corners=False)
    pooled = F.adaptive_avg_pool1d(resized.mean(2), num_segments)  # (1, P, S)
    return pooled[0].t().contiguous()  # (S, P)


class ClapMapProjection(nn.Module):
    """MM-CSE's audio path for the CLAP feature map (docs/avvp.md §5.1).

    Original: the (B, 64, 768) map, transposed to (B, 768, 64) and viewed as
    (B, 768, 2, 32), is resized bicubically to (2, 1024); ``fc`` (768 -> H) is applied at
    every position; the result is averaged over the 2-axis and adaptive-average-pooled
    to 10 steps -> (B, 10, H). Because everything but ``fc`` is linear over positions,
    this block applies the equivalent (10, 64) resampling matrix first and ``fc`` on 10
    vectors: the same function (agreement ~1e-7), without the (B, 768, 2, 1024)
    intermediate (400 MB at batch 64) or 200× the ``fc`` work.
    :meth:`reference_forward` is the literal chain, kept for tests.
    """

    def __init__(
        self,
        *,
        in_dim: int,
        out_dim: int,
        map_size: tuple[int, int] = (2, 32),
        resize: tuple[int, int] = (2, 1024),
        num_segments: int = 10,
    ) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.map_size = tuple(map_size)
        self.resize = tuple(resize)
        self.num_segments = num_segments
        self.fc = nn.Linear(in_dim, out_dim)
        matrix = clap_resampling_matrix(self.map_size, self.resize, num_segments)
        self.register_buffer("resampling", matrix.float(), persistent=False)  # (S, P)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions = self.map_size[0] * self.map_size[1]
        if x.shape[1] != positions:
            raise ValueError(
                f"ClapMapProjection expects a (B, {positions}, {self.in_dim}) CLAP map, got "
                f"{tuple(x.shape)}: choose model/projection to match the feature set"
            )
        pooled = torch.matmul(self.resampling.to(x.dtype), x)  # (B, S, in_dim)
        return self.fc(pooled)  # (B, S, H)

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The original chain, literally (memory-hungry; for equivalence tests)."""
        b = x.shape[0]
        fmap = x.transpose(1, 2).reshape(b, self.in_dim, *self.map_size)  # (B, C, 2, 32)
        fmap = F.interpolate(fmap, size=self.resize, mode="bicubic", align_corners=False)
        y = self.fc(fmap.permute(0, 2, 3, 1)).mean(1)  # (B, 1024, H)
        return F.adaptive_avg_pool1d(y.transpose(1, 2), self.num_segments).transpose(1, 2)


class MotionFusion(nn.Module):
    """``x_v = fc_fusion([vid_s, fc_st(visual_st)])``: adds the R(2+1)D clip features.

    vid_s (B, T, H), visual_st (B, T, motion_dim) -> (B, T, H).
    """

    def __init__(self, *, motion_dim: int, dim: int) -> None:
        super().__init__()
        self.fc_st = nn.Linear(motion_dim, dim)
        self.fc_fusion = nn.Linear(2 * dim, dim)

    def forward(self, vid_s: torch.Tensor, visual_st: torch.Tensor) -> torch.Tensor:
        vid_st = self.fc_st(visual_st)  # (B, T, H)
        return self.fc_fusion(torch.cat([vid_s, vid_st], dim=-1))  # (B, T, H)


class InputProjection(nn.Module):
    """Audio path, visual path and motion fusion: features -> ``(x_a, x_v)``, (B, T, H) each.

    ``feature_set`` names the released feature set these input sizes belong to
    (``han`` | ``valor``); ``avvp-train`` checks it against ``data.feature_set``.
    """

    def __init__(
        self, *, audio: nn.Module, visual: nn.Module, motion: nn.Module, feature_set: str
    ) -> None:
        super().__init__()
        self.feature_set = feature_set
        self.audio = audio
        self.visual = visual
        self.motion = motion

    def forward(
        self, audio: torch.Tensor, visual: torch.Tensor, visual_st: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x_a = self.audio(audio)  # (B, T, H)
        x_v = self.motion(self.visual(visual), visual_st)  # (B, T, H)
        return x_a, x_v
