"""Enhancement layers: MM-CSE's FGSE over class tokens, HAN's hybrid attention layer.

Both modalities share each layer's weights, so features travel modality-stacked:
class tokens z (2, B, T, K, d) (index 0 audio, 1 visual), holistic features
z (2, B, T, H). "The other modality" of every slot is ``z.flip(0)``; one call updates
audio (query audio, other visual) and visual (query visual, other audio) together,
each from the layer inputs.

FGSE layer (AVVP.md §5.3), switchable parts chosen by config:
- SECM (``conf/model/secm``: ``attention`` | ``none`` | ``intra_only`` | ``cross_only``):
  :class:`SECM` holds ``intra`` (attention among the K class tokens of a second) and
  ``cross`` (the same with keys/values from the other modality) — each an attention
  block or :class:`NoAttention`;
- LGSF (``conf/model/lgsf``: ``gated_global`` | ``none`` | ...): :class:`LGSF` holds
  ``intra`` (:class:`GatedGlobalIntra`) and ``cross`` (:class:`GatedGlobalCross`) — or
  :class:`NoGating`, which passes the SECM stream through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from avvp_lit.models.kernels import class_token_attention, gated_global, norm_feed_forward

Maps = dict[str, torch.Tensor]


class _ClassTokenAttention(nn.Module):
    """Residual multi-head attention among the K class tokens of one second.

    Parameters named as ``nn.MultiheadAttention``'s (``in_proj_weight`` (3d, d),
    ``in_proj_bias``, ``out_proj``). ``forward(z, need_weights)`` with z (2, B, T, K, d)
    returns ``s = z + MHA(...)`` (2, B, T, K, d) and, with ``need_weights``, the
    head-averaged maps (B, T, K, K) of each modality under ``map_names`` (else ``{}``).
    """

    cross = False  # keys/values from the other modality
    map_names = ("aa", "vv")  # the maps of the audio and the visual queries

    def __init__(self, *, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, z: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, Maps]:
        m, b, t, k, d = z.shape
        s, maps = class_token_attention(
            z.reshape(m, b * t, k, d),
            self.in_proj_weight,
            self.in_proj_bias,
            self.out_proj.weight,
            self.out_proj.bias,
            num_heads=self.num_heads,
            cross=self.cross,
            need_weights=need_weights,
            dropout=self.dropout if self.training else 0.0,
        )  # s = z + out_proj(attention): (2, B·T, K, d); maps (2, B·T, K, K) or None
        if maps is None:
            return s.view_as(z), {}
        maps = maps.view(m, b, t, k, k)
        return s.view_as(z), dict(zip(self.map_names, maps.unbind(0), strict=True))


class IntraModalAttention(_ClassTokenAttention):
    """SECM intra: queries, keys and values from the same modality's class tokens."""


class CrossModalAttention(_ClassTokenAttention):
    """SECM cross: queries from this modality, keys and values from the other one."""

    cross = True
    map_names = ("av", "va")


class NoAttention(nn.Module):
    """SECM part switched off: the stream is the layer input, no attention map."""

    def forward(self, z: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, Maps]:
        return z, {}


class SECM(nn.Module):
    """Semantic-enhanced co-occurrence modelling: ``intra`` and ``cross`` attention parts.

    Either part can be switched off (``intra=False`` / ``cross=False``); the maps it
    would produce (``aa``/``vv`` for intra, ``av``/``va`` for cross) are then absent.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        dropout: float = 0.0,
        intra: bool = True,
        cross: bool = True,
    ) -> None:
        super().__init__()
        self.intra = (
            IntraModalAttention(dim=dim, num_heads=num_heads, dropout=dropout)
            if intra
            else NoAttention()
        )
        self.cross = (
            CrossModalAttention(dim=dim, num_heads=num_heads, dropout=dropout)
            if cross
            else NoAttention()
        )


class GatedUpdate:
    """An LGSF result ``i = z + gate·g`` kept factored (gate (2, B, T, K, 1), g (2, B, 1,
    K, d)): a linear map of i is ``W z + gate·(W g)``, so the layer never materialises i.
    """

    def __init__(self, gate: torch.Tensor, glob: torch.Tensor) -> None:
        self.gate = gate
        self.glob = glob

    def add_projection(self, out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``out + W (i - z)`` = out + gate·(W g); out (2, B, T, K, d').

        Out of place: ``out`` is a view of a matmul result, and an in-place update of a
        view makes autograd copy the whole gradient in the backward pass.
        """
        return torch.addcmul(out, self.gate, F.linear(self.glob, weight))


class StreamUpdate:
    """An LGSF part that is off: ``i = s`` (the SECM stream); ``W (i - z) = W (s - z)``.

    With the SECM part off too, s is z itself and the update is zero: nothing to add.
    """

    def __init__(self, stream: torch.Tensor, base: torch.Tensor) -> None:
        self.stream = stream
        self.base = base

    def add_projection(self, out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.stream is self.base:
            return out
        return out + F.linear(self.stream - self.base, weight)


class GatedGlobalIntra(nn.Module):
    """LGSF intra, per class across time (AVVP.md §5.3).

    ``h_t = relu(glob1 s_t)``, ``g = mean_t relu(glob2 s_t)``, ``r_t = sigmoid(cos(h_t, g))``;
    the result is ``i = z + r_t·g`` (as a :class:`GatedUpdate`). s, z (2, B, T, K, d).
    """

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        self.glob1 = nn.Linear(dim, dim)
        self.glob2 = nn.Linear(dim, dim)

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> GatedUpdate:
        p_global = self.glob2(s)  # (2, B, T, K, d); glob1(s) runs inside the kernel
        return GatedUpdate(
            *gated_global(s, self.glob1.weight, self.glob1.bias, p_global, cross=False)
        )


class GatedGlobalCross(nn.Module):
    """LGSF cross: the gate compares this stream with the OTHER modality's global feature.

    ``h_t = relu(glob s_t)``, ``g = mean_t relu(glob o_t)`` (o: the other modality's layer
    input, same ``glob``), ``r_t = sigmoid(cos(h_t, g))``; ``i = z + r_t·g``.
    """

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        self.glob = nn.Linear(dim, dim)

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> GatedUpdate:
        # glob(z) of the other modality gives g: the kernel flips it over the modality axis
        glob = self.glob
        return GatedUpdate(*gated_global(s, glob.weight, glob.bias, glob(z), cross=True))


class NoGating(nn.Module):
    """LGSF part switched off: the SECM stream passes through unchanged (``i = s``)."""

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> StreamUpdate:
        return StreamUpdate(s, z)


class LGSF(nn.Module):
    """Local-global semantic fusion: ``intra`` and ``cross`` gating parts (either can be off)."""

    def __init__(self, *, dim: int, intra: bool = True, cross: bool = True) -> None:
        super().__init__()
        self.intra = GatedGlobalIntra(dim=dim) if intra else NoGating()
        self.cross = GatedGlobalCross(dim=dim) if cross else NoGating()


class FGSELayer(nn.Module):
    """One fine-grained semantic enhancement layer (AVVP.md §5.3), both modalities at once.

    ``s1 = SECM.intra(z)``, ``i1 = LGSF.intra(s1, z)``, ``s2 = SECM.cross(z)``,
    ``i2 = LGSF.cross(s2, z)``; ``y = LayerNorm(fc1(i1) + fc2(i2))``;
    output ``linear2(drop(relu(linear1(y))))`` (no residual). z (2, B, T, K, d) -> same.
    """

    def __init__(
        self, *, dim: int, ffn_dim: int, dropout: float, secm: nn.Module, lgsf: nn.Module
    ) -> None:
        super().__init__()
        self.secm = secm
        self.lgsf = lgsf
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.dropout = dropout  # inside the feed-forward block

    def forward(self, z: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, Maps]:
        s1, intra_maps = self.secm.intra(z, need_weights)
        i1 = self.lgsf.intra(s1, z)
        s2, cross_maps = self.secm.cross(z, need_weights)
        i2 = self.lgsf.cross(s2, z)
        # fc1(i1) + fc2(i2) with i = z + (i - z): (W1 + W2) z + W1 (i1 - z) + W2 (i2 - z) + b
        weight = self.fc1.weight + self.fc2.weight
        mixed = F.linear(z, weight, self.fc1.bias + self.fc2.bias)  # (2, B, T, K, d)
        mixed = i1.add_projection(mixed, self.fc1.weight)
        mixed = i2.add_projection(mixed, self.fc2.weight)
        out = norm_feed_forward(  # linear2(drop(relu(linear1(norm1(mixed)))))
            mixed,
            self.norm1,
            self.linear1,
            self.linear2,
            dropout=self.dropout if self.training else 0.0,
        )
        return out, {**intra_maps, **cross_maps}


class LayerStack(nn.Module):
    """``num_layers`` layers built by ``layer()`` (a factory: each layer its own weights);
    ``forward(z)`` returns the last output and the last layer's attention maps."""

    def __init__(self, *, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @classmethod
    def build(cls, layer: Callable[[], nn.Module], num_layers: int) -> LayerStack:
        return cls(layers=[layer() for _ in range(num_layers)])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, Maps]:
        maps: Maps = {}
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            z, maps = layer(z, need_weights=i == last)
        return z, maps


class HybridAttentionLayer(nn.Module):
    """HAN's hybrid attention layer (AVVP.md §4), shared by both modalities.

    ``q1 = LN1(q + drop(attn_cross(q, o, o)) + drop(attn_self(q, q, q)))``,
    ``q2 = LN2(q1 + drop(W2 drop(relu(W1 q1))))``; z (2, B, T, H) -> same, no maps.
    """

    def __init__(self, *, dim: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.cm_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)  # inside the feed-forward block
        self.dropout_cross = nn.Dropout(dropout)
        self.dropout_self = nn.Dropout(dropout)
        self.dropout_ffn = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, Maps]:
        q = z.flatten(0, 1)  # (2B, T, H)
        o = z.flip(0).flatten(0, 1)  # the other modality, (2B, T, H)
        cross = self.cm_attn(q, o, o, need_weights=False)[0]
        self_ = self.self_attn(q, q, q, need_weights=False)[0]
        q1 = self.norm1(q + self.dropout_cross(cross) + self.dropout_self(self_))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(q1))))
        q2 = self.norm2(q1 + self.dropout_ffn(ffn))
        return q2.view_as(z), {}
