"""What every parsing network returns: one dataclass, read by losses, metrics and tools."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avvp_lit.classes import MODALITIES

AUDIO, VISUAL = MODALITIES.index("audio"), MODALITIES.index("visual")  # frame_prob's axis 2
MAP_KEYS = ("aa", "av", "vv", "va")  # attention maps: <query modality><other modality>
NETWORK_INPUTS = ("audio", "visual", "visual_st")  # the batch keys forward() takes, in order


@dataclass
class ParsingOutput:
    """A parsing network's predictions and what its auxiliary losses need.

    Always present (B batch, T = 10 seconds, K = 25 classes):
    - ``global_prob``, ``a_prob``, ``v_prob`` (B, K): video-level event probabilities
      (any modality, audio, visual) from attentive MMIL pooling;
    - ``frame_prob`` (B, T, 2, K) per-second probabilities and ``frame_logits`` (B, T, 2, K)
      their pre-sigmoid logits; modality axis index 0 audio, 1 visual.

    Class-wise models (MM-CSE) also fill:
    - ``attn_maps``: ``{"aa", "av", "vv", "va"}`` -> (B, T, K, K), the last enhancement
      layer's head-averaged class-token attention (first letter: query modality); a map
      is absent when the SECM part that makes it is switched off;
    - ``holistic_a``, ``holistic_v`` (B, T, H): the projected features the decoupled
      features must reconstruct;
    - ``class_features_a``, ``class_features_v`` (B, T, K, d): the class branches'
      outputs before background fusion; ``background_a``, ``background_v`` (B, T, d)
      the background branch (``None`` without one);
    - ``recon_a``, ``recon_v`` (B, T, H): reconstructions of the holistic features
      (``None`` when the decoupling has no reconstruction head).
    """

    global_prob: torch.Tensor
    a_prob: torch.Tensor
    v_prob: torch.Tensor
    frame_prob: torch.Tensor
    frame_logits: torch.Tensor
    attn_maps: dict[str, torch.Tensor] | None = None
    holistic_a: torch.Tensor | None = None
    holistic_v: torch.Tensor | None = None
    class_features_a: torch.Tensor | None = None
    class_features_v: torch.Tensor | None = None
    background_a: torch.Tensor | None = None
    background_v: torch.Tensor | None = None
    recon_a: torch.Tensor | None = None
    recon_v: torch.Tensor | None = None
