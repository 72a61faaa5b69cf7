"""Enhancement layers: MM-CSE's FGSE over class tokens, HAN's hybrid attention layer.

Both modalities share each layer's weights, so features travel modality-stacked:
class tokens z (2, B, T, K, d) (index 0 audio, 1 visual), holistic features
z (2, B, T, H). "The other modality" of every slot is ``z.flip(0)``; one call updates
audio (query audio, other visual) and visual (query visual, other audio) together,
each from the layer inputs.

FGSE layer (docs/avvp.md §5.3), switchable parts chosen by config:
- SECM (``conf/model/secm``: ``attention`` | ``none`` | ``intra_only`` | ``cross_only``):
  :class:`SECM` holds ``intra`` (:class:`IntraModalAttention`, among the K class tokens
  of one second) and ``cross`` (:class:`CrossModalAttention`, keys and values from the
  other modality), or :class:`NoAttention`;
- LGSF (``conf/model/lgsf``: ``gated_global`` | ``none`` | ...): :class:`LGSF` holds
  ``intra`` (:class:`GatedGlobalIntra`) and ``cross`` (:class:`GatedGlobalCross`), or
  :class:`NoGating`, which passes the SECM stream through.

Holistic layers (HAN, VALOR): :class:`HybridAttentionLayer` (post-norm) and
:class:`PreNormHybridAttentionLayer`, stacked by :class:`LayerStack` (HAN: both
modalities from the layer inputs) or :class:`AlternatingStack` (VALOR: audio first, then
visual from the updated audio).

Everything here is plain PyTorch, so ``torch.compile`` traces a layer as one graph and
autocast runs it in bf16. ``avvp_lit.models.fused`` has an optional CPU fast path with
the same parameters (see ``model.fused``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Maps = dict[str, torch.Tensor]


class ClassTokenAttention(nn.MultiheadAttention):
    """SECM attention: ``s = z + MHA(z, o, o)`` among the K class tokens of one second.

    ``nn.MultiheadAttention`` itself (its parameters, initialisation and attention
    dropout, applied to the weights; the returned maps are the weights after dropout, as
    in the original). Subclasses say where keys and values come from (:meth:`other`) and
    name the maps of the audio and visual queries (``map_names``).
    ``forward(z, need_weights)``: z (2, B, T, K, d) -> s (2, B, T, K, d) and, with
    ``need_weights``, the head-averaged maps (B, T, K, K) per modality (else ``{}``).
    """

    map_names: tuple[str, str]

    def __init__(self, *, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__(dim, num_heads, dropout=dropout, batch_first=True)

    def other(self, z: torch.Tensor) -> torch.Tensor:
        """The tokens that keys and values are made from, (2, B, T, K, d)."""
        raise NotImplementedError

    def forward(  # type: ignore[override]
        self, z: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, Maps]:
        m, b, t, k, d = z.shape
        query = z.reshape(m * b * t, k, d)  # one sequence of K tokens per (modality, second)
        source = self.other(z).reshape(m * b * t, k, d)
        attended, weights = super().forward(
            query, source, source, need_weights=need_weights, average_attn_weights=True
        )  # (2·B·T, K, d), (2·B·T, K, K) or None
        s = z + attended.view_as(z)  # (2, B, T, K, d)
        if weights is None:
            return s, {}
        maps = weights.view(m, b, t, k, k).unbind(0)  # audio queries, visual queries
        return s, dict(zip(self.map_names, maps, strict=True))


class IntraModalAttention(ClassTokenAttention):
    """SECM intra: ``s1 = z + MHA(z, z, z)``; maps ``aa`` (audio), ``vv`` (visual)."""

    map_names = ("aa", "vv")

    def other(self, z: torch.Tensor) -> torch.Tensor:
        return z


class CrossModalAttention(ClassTokenAttention):
    """SECM cross: ``s2 = z + MHA(z, o, o)``, o the other modality at the same second;
    maps ``av`` (audio queries), ``va`` (visual queries)."""

    map_names = ("av", "va")

    def other(self, z: torch.Tensor) -> torch.Tensor:
        return z.flip(0)


class NoAttention(nn.Module):
    """SECM part switched off: the stream is the layer input, no attention map."""

    def forward(self, z: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, Maps]:
        return z, {}


class SECM(nn.Module):
    """Segment-wise event co-occurrence modelling: ``intra`` and ``cross`` attention parts.

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


def gated_global_feature(
    local: torch.Tensor, global_source: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """LGSF's gate and global feature, per class across time (time on axis 2).

    ``g = mean_t global_source_t`` (2, B, 1, K, d), ``r_t = sigmoid(cos(local_t, g))``
    (2, B, T, K, 1); local, global_source (2, B, T, K, d), both after their relu.
    """
    g = global_source.mean(dim=2, keepdim=True)  # (2, B, 1, K, d)
    r = torch.sigmoid(F.cosine_similarity(local, g, dim=-1)).unsqueeze(-1)  # (2, B, T, K, 1)
    return r, g


class GatedGlobalIntra(nn.Module):
    """LGSF intra: ``h_t = relu(G1 s1_t)``, ``g = mean_t relu(G2 s1_t)``,
    ``r_t = sigmoid(cos(h_t, g))``; ``i1 = z + r_t·g``. s, z (2, B, T, K, d) -> i1, same."""

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        self.glob1 = nn.Linear(dim, dim)
        self.glob2 = nn.Linear(dim, dim)

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r, g = gated_global_feature(F.relu(self.glob1(s)), F.relu(self.glob2(s)))
        return z + r * g  # (2, B, T, K, d)


class GatedGlobalCross(nn.Module):
    """LGSF cross: ``h_t = relu(G s2_t)``, ``g = mean_t relu(G o_t)`` (o: the OTHER
    modality's layer input, same G), ``r_t = sigmoid(cos(h_t, g))``; ``i2 = z + r_t·g``."""

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        self.glob = nn.Linear(dim, dim)

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r, g = gated_global_feature(F.relu(self.glob(s)), F.relu(self.glob(z.flip(0))))
        return z + r * g  # (2, B, T, K, d)


class NoGating(nn.Module):
    """LGSF part switched off: the SECM stream passes through unchanged (``i = s``)."""

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return s


class LGSF(nn.Module):
    """Local-global semantic fusion: ``intra`` and ``cross`` gating parts (either can be off)."""

    def __init__(self, *, dim: int, intra: bool = True, cross: bool = True) -> None:
        super().__init__()
        self.intra = GatedGlobalIntra(dim=dim) if intra else NoGating()
        self.cross = GatedGlobalCross(dim=dim) if cross else NoGating()


class FGSELayer(nn.Module):
    """One fine-grained semantic enhancement layer (docs/avvp.md §5.3), both modalities at once.

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
        self.dropout = nn.Dropout(dropout)  # inside the feed-forward block

    def forward(self, z: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, Maps]:
        s1, intra_maps = self.secm.intra(z, need_weights)  # (2, B, T, K, d)
        i1 = self.lgsf.intra(s1, z)
        s2, cross_maps = self.secm.cross(z, need_weights)
        i2 = self.lgsf.cross(s2, z)
        y = self.norm1(self.fc1(i1) + self.fc2(i2))  # (2, B, T, K, d)
        out = self.linear2(self.dropout(F.relu(self.linear1(y))))  # (2, B, T, K, d)
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
    """HAN's hybrid attention layer (docs/avvp.md §4), shared by both modalities; VALOR's
    encoder layer in its ``post_norm`` form.

    ``q1 = LN1(q + drop(attn_cross(q, o, o)) + drop(attn_self(q, q, q)))``,
    ``q2 = LN2(q1 + drop(W2 drop(relu(W1 q1))))``; z (2, B, T, H) -> same, no maps.
    :meth:`attend` updates one modality (query q, other modality o, (N, T, H) each).
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

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))  # (N, T, H)

    def attend(self, q: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        cross = self.cm_attn(q, o, o, need_weights=False)[0]  # (N, T, H)
        self_ = self.self_attn(q, q, q, need_weights=False)[0]
        q1 = self.norm1(q + self.dropout_cross(cross) + self.dropout_self(self_))
        return self.norm2(q1 + self.dropout_ffn(self.feed_forward(q1)))

    def forward(self, z: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, Maps]:
        q = z.flatten(0, 1)  # (2B, T, H): both modalities as queries at once
        o = z.flip(0).flatten(0, 1)  # the other modality of each, (2B, T, H)
        return self.attend(q, o).view_as(z), {}


class PreNormHybridAttentionLayer(HybridAttentionLayer):
    """VALOR's encoder layer in its ``pre_norm`` form (same parameters): the query is
    normalised before the attentions (keys and values of the other modality are not),
    the residual stream before the feed-forward block, and nothing after a residual.

    ``n = LN1(q)``; ``q1 = q + drop(attn_cross(n, o, o)) + drop(attn_self(n, n, n))``;
    ``q2 = q1 + drop(W2 drop(relu(W1 LN2(q1))))``. Stacks of it end with final norms
    (:class:`AlternatingStack` ``final_norm_dim``).
    """

    def attend(self, q: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        n = self.norm1(q)  # (N, T, H)
        cross = self.cm_attn(n, o, o, need_weights=False)[0]
        self_ = self.self_attn(n, n, n, need_weights=False)[0]
        q1 = q + self.dropout_cross(cross) + self.dropout_self(self_)
        return q1 + self.dropout_ffn(self.feed_forward(self.norm2(q1)))


class AlternatingStack(nn.Module):
    """VALOR's encoder: at each layer audio is updated from (audio, visual), then visual
    from (visual, the audio just updated), one layer's weights serving both modalities.
    (HAN's :class:`LayerStack` updates both from the layer's inputs at once.)

    ``final_norm_dim``: a LayerNorm per modality after the last layer (for pre-norm
    layers), or ``None`` for none. ``layers`` provide ``attend(q, o)``; z (2, B, T, H)
    -> same, no maps.
    """

    def __init__(self, *, layers: Sequence[nn.Module], final_norm_dim: int | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        if final_norm_dim is not None:
            self.final_norm_a = nn.LayerNorm(final_norm_dim)
            self.final_norm_v = nn.LayerNorm(final_norm_dim)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, Maps]:
        a, v = z.unbind(0)  # (B, T, H) each
        for layer in self.layers:
            a = layer.attend(a, v)
            v = layer.attend(v, a)
        if hasattr(self, "final_norm_a"):
            a, v = self.final_norm_a(a), self.final_norm_v(v)
        return torch.stack([a, v]), {}
