"""A stand-in parsing network and loss with the output contract of the real ones, small
enough to train in a test in seconds."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from avvp_lit.models.loading import register_block


@dataclass
class TinyOutput:
    global_prob: torch.Tensor
    a_prob: torch.Tensor
    v_prob: torch.Tensor
    frame_prob: torch.Tensor
    frame_logits: torch.Tensor
    attn_maps: dict[str, torch.Tensor] | None


@register_block
class TinyNet(nn.Module):
    """A stand-in parsing network for the HAN feature shapes (B, 10, 128) / (B, 80, 2048)
    or, with ``feature_set="valor"``, VALOR's (B, 64, 768) / (B, 10, 768).

    Frame logits are standardised per video, so about half of the seconds are positive
    whatever the random features; ``class_wise`` adds SECM-like attention maps.
    """

    def __init__(self, feature_set: str = "han", class_wise: bool = True) -> None:
        super().__init__()
        self.feature_set = feature_set
        self.class_wise = class_wise
        valor = feature_set == "valor"  # CLAP map (B, 64, 768), CLIP frames (B, 10, 768)
        self.fc_a = nn.Linear(768 if valor else 128, 25)
        self.fc_v = nn.Linear(768 if valor else 2048, 25)
        self.fc_st = nn.Linear(512, 25)

    def forward(
        self, audio: torch.Tensor, visual: torch.Tensor, visual_st: torch.Tensor
    ) -> TinyOutput:
        batch = audio.shape[0]
        if audio.shape[1] != 10:  # the CLAP token map, pooled to 10 seconds
            audio = nn.functional.adaptive_avg_pool1d(audio.transpose(1, 2), 10).transpose(1, 2)
        a = self.fc_a(audio)
        v = self.fc_v(visual.view(batch, 10, -1, visual.shape[-1]).mean(2)) + self.fc_st(visual_st)
        logits = torch.stack([a, v], dim=2)
        logits = logits - logits.mean(dim=(1, 2, 3), keepdim=True)
        logits = 2 * logits / logits.std(dim=(1, 2, 3), keepdim=True)
        frame_prob = torch.sigmoid(logits)
        a_prob, v_prob = frame_prob.max(dim=1).values.unbind(1)
        maps = None
        if self.class_wise:
            outer = {
                "aa": (a, a),
                "av": (a, v),
                "vv": (v, v),
                "va": (v, a),
            }
            maps = {
                k: torch.softmax(q[..., :, None] * o[..., None, :], -1)
                for k, (q, o) in outer.items()
            }
        return TinyOutput(
            global_prob=0.5 * (a_prob + v_prob),
            a_prob=a_prob,
            v_prob=v_prob,
            frame_prob=frame_prob,
            frame_logits=logits,
            attn_maps=maps,
        )


class TinyLoss(nn.Module):
    """Weak-label BCE on the video-level probability, in the ``{term, total}`` contract."""

    def forward(
        self, output: TinyOutput, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        prob = output.global_prob.clamp(1e-7, 1 - 1e-7)
        bce = nn.functional.binary_cross_entropy(prob, batch["label"])
        return {"bce": bce, "total": bce}
