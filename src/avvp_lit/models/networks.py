"""The two network compositions: class-wise (MM-CSE) and holistic (HAN, VALOR).

Both are assembled from blocks by Hydra (``conf/model/mmcse.yaml``, ``conf/model/han.yaml``,
``conf/model/valor.yaml``);
ablations swap blocks (``model/decoupling=shared``, ``model/secm=none``, ...), never flags
inside a forward pass. ``forward(audio, visual, visual_st)`` returns a :class:`ParsingOutput`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from avvp_lit.models.enhancement import FGSELayer, LayerStack
from avvp_lit.models.heads import MMILPooling
from avvp_lit.models.output import ParsingOutput


class ParsingNetwork(nn.Module):
    """What both compositions share: the input projection and the record of what the
    config composed (``name``, ``feature_set``, ``hidden_dim``, ``num_classes``; the blocks
    read the sizes from the same config values).

    Subclasses register their middle blocks, then :meth:`add_output_blocks`, so that
    parameters stay in input-to-output order (the order optimizer states are saved in).
    """

    def __init__(
        self,
        *,
        projection: nn.Module,
        hidden_dim: int,
        num_classes: int,
        name: str,
        feature_set: str | None,
    ) -> None:
        super().__init__()
        self.name = name
        self.feature_set = feature_set
        self.hidden_dim = hidden_dim
        self.num_classes = num_classes
        self.projection = projection

    def add_output_blocks(self, heads: nn.Module, pooling: nn.Module | None) -> None:
        """The heads and the pooling (attentive MMIL unless given)."""
        self.heads = heads
        self.pooling = pooling if pooling is not None else MMILPooling()


class ClassWiseParsingNetwork(ParsingNetwork):
    """MM-CSE (docs/avvp.md §5): projection -> class-aware decoupling -> FGSE layers over the
    K class tokens -> class-specific heads -> attentive MMIL pooling.

    Blocks: ``projection`` ((audio, visual, visual_st) -> x_a, x_v (B, T, H)),
    ``decoupling`` ((x_a, x_v) -> per-modality tokens (B, T, K, d)), ``secm`` and
    ``lgsf`` (factories called once per layer, so each of the ``num_layers`` FGSE layers
    has its own weights), ``heads`` and ``pooling``.
    """

    def __init__(
        self,
        *,
        projection: nn.Module,
        decoupling: nn.Module,
        secm: Callable[[], nn.Module],
        lgsf: Callable[[], nn.Module],
        heads: nn.Module,
        pooling: nn.Module | None = None,
        num_layers: int = 4,
        class_dim: int = 128,
        ffn_dim: int = 512,
        dropout: float = 0.1,
        hidden_dim: int = 256,
        num_classes: int = 25,
        name: str = "mmcse",
        feature_set: str | None = None,
    ) -> None:
        super().__init__(
            projection=projection,
            hidden_dim=hidden_dim,
            num_classes=num_classes,
            name=name,
            feature_set=feature_set,
        )
        self.class_dim = class_dim
        self.decoupling = decoupling

        def layer() -> FGSELayer:
            return FGSELayer(
                dim=class_dim, ffn_dim=ffn_dim, dropout=dropout, secm=secm(), lgsf=lgsf()
            )

        self.enhancement = LayerStack.build(layer, num_layers)
        self.add_output_blocks(heads, pooling)

    def forward(
        self, audio: torch.Tensor, visual: torch.Tensor, visual_st: torch.Tensor
    ) -> ParsingOutput:
        x_a, x_v = self.projection(audio, visual, visual_st)  # (B, T, H) each
        tok_a, tok_v = self.decoupling(x_a, x_v)  # events (B, T, K, d) each
        z = torch.stack([tok_a.events, tok_v.events])  # (2, B, T, K, d)
        z, maps = self.enhancement(z)  # (2, B, T, K, d), maps (B, T, K, K)
        logits = self.heads(z)  # 3 × (B, T, 2, K)
        pooled = self.pooling(*logits)
        return ParsingOutput(
            frame_logits=logits.frame,
            attn_maps=maps,
            holistic_a=x_a,
            holistic_v=x_v,
            class_features_a=tok_a.class_features,
            class_features_v=tok_v.class_features,
            background_a=tok_a.background,
            background_v=tok_v.background,
            recon_a=tok_a.recon,
            recon_v=tok_v.recon,
            **pooled,
        )


class HolisticParsingNetwork(ParsingNetwork):
    """HAN (docs/avvp.md §4): projection -> hybrid attention layers on one feature per second
    -> shared heads -> attentive MMIL pooling.

    ``enhancement`` is a layer factory (called ``num_layers`` times; HAN uses 1);
    ``stack`` builds the layer stack from the layers (``stack(layers=...)``; default
    :class:`~avvp_lit.models.enhancement.LayerStack`, HAN's simultaneous update; VALOR:
    :class:`~avvp_lit.models.enhancement.AlternatingStack`). ``frame_logits`` are the
    pre-sigmoid per-second logits; there are no class-token attention maps.
    """

    def __init__(
        self,
        *,
        projection: nn.Module,
        enhancement: Callable[[], nn.Module],
        heads: nn.Module,
        pooling: nn.Module | None = None,
        stack: Callable[..., nn.Module] | None = None,
        num_layers: int = 1,
        hidden_dim: int = 512,
        num_classes: int = 25,
        name: str = "han",
        feature_set: str | None = None,
    ) -> None:
        super().__init__(
            projection=projection,
            hidden_dim=hidden_dim,
            num_classes=num_classes,
            name=name,
            feature_set=feature_set,
        )
        layers = [enhancement() for _ in range(num_layers)]
        self.enhancement = (stack or LayerStack)(layers=layers)
        self.add_output_blocks(heads, pooling)

    def forward(
        self, audio: torch.Tensor, visual: torch.Tensor, visual_st: torch.Tensor
    ) -> ParsingOutput:
        x_a, x_v = self.projection(audio, visual, visual_st)  # (B, T, H) each
        z, _ = self.enhancement(torch.stack([x_a, x_v]))  # (2, B, T, H)
        logits = self.heads(z)  # 3 × (B, T, 2, K)
        return ParsingOutput(
            frame_logits=logits.frame, holistic_a=x_a, holistic_v=x_v, **self.pooling(*logits)
        )
