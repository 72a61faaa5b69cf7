"""Class-aware feature decoupling: one holistic feature per second -> K class tokens.

Options (``conf/model/decoupling/``):
- ``cafd`` (:class:`ClassAwareDecoupling`, MM-CSE, docs/avvp.md §5.2): K class branches and
  one background branch per modality, dynamic background fusion, reconstruction head;
- ``cafd_no_background``: the same without the background branch or fusion;
- ``shared`` (:class:`SharedDecoupling`, the ablation "without CAFD"): one branch shared
  by all classes plus a learned embedding per class token.

The branches of a modality are computed together (:class:`StackedLinear`: one GEMM over
the concatenated weights; :class:`GroupedLinear`: one batched matmul over stacked
weights), never as a Python loop over classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _init_linear_(weight: torch.Tensor, bias: torch.Tensor, fan_in: int) -> None:
    """nn.Linear's default initialisation, for each stacked branch."""
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)
    nn.init.uniform_(bias, -bound, bound)


class BranchDropout(nn.Dropout):
    """``nn.Dropout`` between the layers of the class branches; a class of its own so that
    the fused CPU path (``models/fused.py``) can give exactly these masks a cheaper draw."""


class StackedLinear(nn.Module):
    """G independent Linear(in_dim, out_dim) on the SAME input, as one matrix product.

    weight (G, out_dim, in_dim), bias (G, out_dim); (..., in_dim) -> (..., G, out_dim).
    """

    def __init__(self, *, in_dim: int, out_dim: int, groups: int) -> None:
        super().__init__()
        self.groups, self.out_dim = groups, out_dim
        self.weight = nn.Parameter(torch.empty(groups, out_dim, in_dim))
        self.bias = nn.Parameter(torch.empty(groups, out_dim))
        _init_linear_(self.weight, self.bias, in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.reshape(self.groups * self.out_dim, -1)
        y = F.linear(x, w, self.bias.reshape(-1))  # (..., G·out)
        return y.view(*x.shape[:-1], self.groups, self.out_dim)  # (..., G, out)


class GroupedLinear(StackedLinear):
    """G independent Linear(in_dim, out_dim), group g reading its own input slot g.

    Parameters as :class:`StackedLinear`; (..., G, in_dim) -> (..., G, out_dim), computed
    as one batched matmul over the groups.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-2]
        g, i = x.shape[-2:]
        xg = x.reshape(-1, g, i).transpose(0, 1)  # (G, M, in)
        y = torch.baddbmm(self.bias.unsqueeze(1), xg, self.weight.transpose(1, 2))  # (G, M, out)
        return y.transpose(0, 1).reshape(*lead, g, -1)  # (..., G, out)


class ClassBranches(nn.Module):
    """``num_branches`` small MLPs on one holistic feature: (B, T, H) -> (B, T, G, d).

    Branch g: ``relu(W_L ... drop(relu(W_1 relu(x))))`` with ``num_layers`` Linear layers
    (MM-CSE: 1 for audio, 2 for visual, dropout between layers); every layer of all
    branches is one batched operation.
    """

    def __init__(
        self,
        *,
        in_dim: int,
        out_dim: int,
        num_branches: int,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.first = StackedLinear(in_dim=in_dim, out_dim=out_dim, groups=num_branches)
        self.rest = nn.ModuleList(
            GroupedLinear(in_dim=out_dim, out_dim=out_dim, groups=num_branches)
            for _ in range(num_layers - 1)
        )
        self.dropout = BranchDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.first(F.relu(x)))  # (B, T, G, d)
        for layer in self.rest:
            h = F.relu(layer(self.dropout(h)))  # (B, T, G, d)
        return h


class SharedBranchWithEmbedding(nn.Module):
    """Ablation "without CAFD": one branch for all classes + a learned embedding per class.

    (B, T, H) -> shared branch (B, T, 1, d) + embedding (K, d) -> (B, T, K, d).
    """

    def __init__(
        self, *, in_dim: int, out_dim: int, num_classes: int, num_layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.branch = ClassBranches(
            in_dim=in_dim, out_dim=out_dim, num_branches=1, num_layers=num_layers, dropout=dropout
        )
        self.class_embedding = nn.Parameter(torch.randn(num_classes, out_dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + self.class_embedding  # (B, T, K, d)


class DynamicBackgroundFusion(nn.Module):
    """MM-CSE's dynamic background fusion (docs/avvp.md §5.2).

    ``α = sigmoid(alpha(x))`` (B, T, 1) with alpha = relu -> Linear(H, H/2) -> relu ->
    dropout -> Linear(H/2, 1); event k becomes ``relu(reduce([α·e_k, (1-α)·bg]))`` with
    reduce: Linear(2d, d). The reduce is split into its event and background halves so
    the background half runs once per second instead of once per class.
    Input: x (B, T, H), branches (B, T, K+1, d) with the background last.
    Returns events (B, T, K, d), class features (B, T, K, d), background (B, T, d).
    """

    def __init__(self, *, hidden_dim: int, class_dim: int, dropout: float) -> None:
        super().__init__()
        self.alpha = nn.Sequential(
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim // 2),
            nn.ReLU(),
            BranchDropout(dropout),
            nn.Linear(hidden_dim // 2, 1),
        )
        self.reduce = nn.Linear(2 * class_dim, class_dim)

    def forward(
        self, x: torch.Tensor, branches: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = branches.shape[-1]
        classes = branches[..., :-1, :]  # (B, T, K, d)
        background = branches[..., -1, :]  # (B, T, d)
        alpha = torch.sigmoid(self.alpha(x))  # (B, T, 1)
        w_event, w_background = self.reduce.weight[:, :d], self.reduce.weight[:, d:]
        bg = F.linear((1.0 - alpha) * background, w_background, self.reduce.bias)  # (B, T, d)
        events = alpha.unsqueeze(-1) * F.linear(classes, w_event)  # (B, T, K, d)
        return F.relu(events + bg.unsqueeze(-2)), classes, background


class NoFusion(nn.Module):
    """No background branch: the class branches are the event features."""

    def forward(
        self, x: torch.Tensor, branches: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, None]:
        return branches, branches, None


class FeatureReconstruction(nn.Module):
    """Rebuild the holistic feature from all branches: (B, T, G·d) -> (B, T, H).

    ``relu(fc2(relu(fc1(flat))))`` with flat the class-major concatenation of the
    branches. (The original visual head starts with one more ReLU; its input is already
    non-negative, so that ReLU is the identity and is not repeated here.)
    """

    def __init__(self, *, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, branches: torch.Tensor) -> torch.Tensor:
        flat = branches.flatten(-2)  # (B, T, G·d), class-major
        return F.relu(self.fc2(F.relu(self.fc1(flat))))  # (B, T, H)


class NoReconstruction(nn.Module):
    """No reconstruction head (the reconstruction loss then cannot be used)."""

    def forward(self, branches: torch.Tensor) -> None:
        return None


@dataclass
class ModalityTokens:
    """One modality's decoupling result (see :class:`ParsingOutput` for the fields)."""

    events: torch.Tensor  # (B, T, K, d)
    class_features: torch.Tensor  # (B, T, K, d)
    background: torch.Tensor | None  # (B, T, d)
    recon: torch.Tensor | None  # (B, T, H)


class ModalityDecoupler(nn.Module):
    """Branches -> fusion -> (optional) reconstruction, for one modality."""

    def __init__(self, *, branches: nn.Module, fusion: nn.Module, reconstruction: nn.Module):
        super().__init__()
        self.branches = branches
        self.fusion = fusion
        self.reconstruction = reconstruction

    def forward(self, x: torch.Tensor) -> ModalityTokens:
        feats = self.branches(x)  # (B, T, G, d)
        events, classes, background = self.fusion(x, feats)
        return ModalityTokens(events, classes, background, self.reconstruction(feats))


class Decoupling(nn.Module):
    """Audio and visual decouplers (separate weights): ``(x_a, x_v) -> (audio, visual)``."""

    def __init__(self, *, audio: ModalityDecoupler, visual: ModalityDecoupler) -> None:
        super().__init__()
        self.audio = audio
        self.visual = visual

    def forward(self, x_a: torch.Tensor, x_v: torch.Tensor) -> tuple[ModalityTokens, ...]:
        return self.audio(x_a), self.visual(x_v)


class ClassAwareDecoupling(Decoupling):
    """CAFD: K class branches (+ a background branch) per modality (docs/avvp.md §5.2).

    Audio branch ``relu(W relu(x_a))`` (H -> d); visual branch
    ``relu(W2 drop(relu(W1 relu(x_v))))`` (H -> d -> d). With ``background`` the branch
    K is the background, fused into every event feature by
    :class:`DynamicBackgroundFusion`; the reconstruction head reads all branches.
    (B, T, H) -> events (B, T, K, d) per modality.
    """

    def __init__(
        self,
        *,
        hidden_dim: int,
        class_dim: int,
        num_classes: int,
        background: bool = True,
        audio_branch_layers: int = 1,
        visual_branch_layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        groups = num_classes + (1 if background else 0)

        def modality(layers: int) -> ModalityDecoupler:
            fusion = (
                DynamicBackgroundFusion(hidden_dim=hidden_dim, class_dim=class_dim, dropout=dropout)
                if background
                else NoFusion()
            )
            return ModalityDecoupler(
                branches=ClassBranches(
                    in_dim=hidden_dim,
                    out_dim=class_dim,
                    num_branches=groups,
                    num_layers=layers,
                    dropout=dropout,
                ),
                fusion=fusion,
                reconstruction=FeatureReconstruction(in_dim=groups * class_dim, out_dim=hidden_dim),
            )

        super().__init__(audio=modality(audio_branch_layers), visual=modality(visual_branch_layers))


class SharedDecoupling(Decoupling):
    """Ablation "without CAFD": a shared branch + class embeddings, no background, no
    reconstruction (so ``loss.terms.reconstruction`` / ``orthogonality`` do not apply)."""

    def __init__(
        self,
        *,
        hidden_dim: int,
        class_dim: int,
        num_classes: int,
        audio_branch_layers: int = 1,
        visual_branch_layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        def modality(layers: int) -> ModalityDecoupler:
            branch = SharedBranchWithEmbedding(
                in_dim=hidden_dim,
                out_dim=class_dim,
                num_classes=num_classes,
                num_layers=layers,
                dropout=dropout,
            )
            return ModalityDecoupler(
                branches=branch, fusion=NoFusion(), reconstruction=NoReconstruction()
            )

        super().__init__(audio=modality(audio_branch_layers), visual=modality(visual_branch_layers))
