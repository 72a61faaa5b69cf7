"""Loss terms: each ``term(output, batch) -> scalar`` (unweighted), ``term.weight`` from config.

``output`` is a :class:`~avvp_lit.models.ParsingOutput`; ``batch`` the datamodule's dict
(``label`` (B, 25) float; on VALOR train batches also ``pl_audio``, ``pl_visual``
(B, 10, 25) per-second pseudo labels). A term whose input is absent raises
:class:`MissingLossInput` naming the key and the config to change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from avvp_lit.classes import MODALITIES
from avvp_lit.models.output import MAP_KEYS, ParsingOutput

Batch = Mapping[str, torch.Tensor]
EPS = 1e-7  # probabilities are clamped to [EPS, 1 - EPS] before BCE (HAN, MM-CSE)


class MissingLossInput(KeyError):
    """A loss term's input is absent from the network output or the batch."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def _remove_hint(name: str) -> str:
    return f"or remove the term with ~loss.terms.{name}"


def _check_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"modalities {unknown} unknown; choose from {tuple(MODALITIES)}")
    return tuple(modalities)


class LossTerm(nn.Module):
    """Base class: ``weight`` (from config) is applied by :class:`CompositeLoss`."""

    name = "term"

    def __init__(self, *, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def output_field(self, output: ParsingOutput, field: str, hint: str) -> torch.Tensor:
        value = getattr(output, field, None)
        if value is None:
            raise MissingLossInput(
                f"loss term {self.name!r} needs output.{field}, which this network does not "
                f"produce ({hint}); {_remove_hint(self.name)}"
            )
        return value

    def batch_key(self, batch: Batch, key: str, hint: str) -> torch.Tensor:
        if key not in batch:
            raise MissingLossInput(
                f"loss term {self.name!r} needs batch[{key!r}], absent from this batch "
                f"({hint}); {_remove_hint(self.name)}"
            )
        return batch[key]


def clamped_bce(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of probabilities clamped to [1e-7, 1 - 1e-7] (mean)."""
    return F.binary_cross_entropy(prob.clamp(EPS, 1.0 - EPS), target)


class VideoBCE(LossTerm):
    """``BCE(clamp(global_prob), label)``: the weak video-level label."""

    name = "video_bce"

    def forward(self, output: ParsingOutput, batch: Batch) -> torch.Tensor:
        label = self.batch_key(batch, "label", "the weak labels; every LLP batch has them")
        return clamped_bce(output.global_prob, label.to(output.global_prob.dtype))


class ModalityBCE(LossTerm):
    """HAN's per-modality terms: ``BCE(a_prob, smooth(y, ε_a)) + BCE(v_prob, smooth(y, ε_v))``.

    ``smooth(y, ε) = (1 - ε)·y + ε/2``; HAN uses ε_a = 0 and ε_v = 0.1
    (visual target 0.9y + 0.05), probabilities clamped as in :func:`clamped_bce`.
    """

    name = "modality_bce"

    def __init__(
        self, *, weight: float = 1.0, audio_smoothing: float = 0.0, visual_smoothing: float = 0.1
    ) -> None:
        super().__init__(weight=weight)
        self.audio_smoothing = float(audio_smoothing)
        self.visual_smoothing = float(visual_smoothing)

    def forward(self, output: ParsingOutput, batch: Batch) -> torch.Tensor:
        y = self.batch_key(batch, "label", "the weak labels").to(output.a_prob.dtype)
        ea, ev = self.audio_smoothing, self.visual_smoothing
        loss_a = clamped_bce(output.a_prob, (1.0 - ea) * y + ea / 2)
        loss_v = clamped_bce(output.v_prob, (1.0 - ev) * y + ev / 2)
        return loss_a + loss_v


class PerModalityTerm(LossTerm):
    """A term summed over the chosen modalities: ``Σ_m modality_loss(output, batch, m)``."""

    def __init__(
        self, *, weight: float = 1.0, modalities: Sequence[str] = ("audio", "visual")
    ) -> None:
        super().__init__(weight=weight)
        self.modalities = _check_modalities(modalities)

    def modality_loss(self, output: ParsingOutput, batch: Batch, modality: str) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, output: ParsingOutput, batch: Batch) -> torch.Tensor:
        total = output.global_prob.new_zeros(())
        for modality in self.modalities:
            total = total + self.modality_loss(output, batch, modality)
        return total


class PseudoLabelBCE(PerModalityTerm):
    """Per-second pseudo labels: ``Σ_m BCEWithLogits(frame_logits[:, :, m], pl_m)`` (means)."""

    name = "pseudo_label"
    hint = "per-second pseudo labels come with the VALOR feature set's train split: data=llp_valor"

    def modality_loss(self, output: ParsingOutput, batch: Batch, modality: str) -> torch.Tensor:
        pl = self.batch_key(batch, f"pl_{modality}", self.hint)
        logits = output.frame_logits[:, :, MODALITIES.index(modality)]  # (B, T, K)
        return F.binary_cross_entropy_with_logits(logits, pl.to(logits.dtype))


class Reconstruction(PerModalityTerm):
    """CAFD reconstruction: ``Σ_m MSE(recon_m, holistic_m)`` (docs/avvp.md §5.2)."""

    name = "reconstruction"
    hint = "it comes from a decoupling with a reconstruction head: model/decoupling=cafd"

    def modality_loss(self, output: ParsingOutput, batch: Batch, modality: str) -> torch.Tensor:
        m = modality[0]
        recon = self.output_field(output, f"recon_{m}", self.hint)
        return F.mse_loss(recon, self.output_field(output, f"holistic_{m}", self.hint))


ORTHOGONALITY_MODES = ("per_class", "class_mean")


def orthogonality(classes: torch.Tensor, background: torch.Tensor, mode: str) -> torch.Tensor:
    """Mean cosine between event features and the background (docs/avvp.md §5.2).

    classes (B, T, K, d), background (B, T, d). ``per_class`` (MM-CSE audio): mean over
    (B, T, k) of cos(e_k, bg); ``class_mean`` (MM-CSE visual): mean over (B, T) of
    cos(mean_k e_k, bg).
    """
    if mode == "per_class":
        return F.cosine_similarity(classes, background.unsqueeze(-2), dim=-1).mean()
    if mode == "class_mean":
        return F.cosine_similarity(classes.mean(dim=-2), background, dim=-1).mean()
    raise ValueError(f"orthogonality mode {mode!r}: choose one of {ORTHOGONALITY_MODES}")


class Orthogonality(LossTerm):
    """Push the class features away from the background branch: ``Σ_m ort_m``.

    ``audio`` / ``visual``: the mode of each modality (:func:`orthogonality`), or ``None``
    to leave it out. MM-CSE: audio ``per_class``, visual ``class_mean``.
    """

    name = "orthogonality"

    def __init__(
        self,
        *,
        weight: float = 1.0,
        audio: str | None = "per_class",
        visual: str | None = "class_mean",
    ) -> None:
        super().__init__(weight=weight)
        for mode in (audio, visual):
            if mode is not None and mode not in ORTHOGONALITY_MODES:
                raise ValueError(f"orthogonality mode {mode!r}: choose from {ORTHOGONALITY_MODES}")
        self.modes = {"a": audio, "v": visual}

    def forward(self, output: ParsingOutput, batch: Batch) -> torch.Tensor:
        hint = "it needs a background branch: model/decoupling=cafd"
        total = output.global_prob.new_zeros(())
        for m, mode in self.modes.items():
            if mode is None:
                continue
            classes = self.output_field(output, f"class_features_{m}", hint)
            background = self.output_field(output, f"background_{m}", hint)
            total = total + orthogonality(classes, background, mode)
        return total


def cooccurrence_targets(
    pl_audio: torch.Tensor, pl_visual: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Event co-occurrence targets (docs/avvp.md §5.5) from per-second labels (B, T, K).

    ``G_aa[t, i, j] = PL_a[t, i]·PL_a[t, j]``, ``G_vv`` likewise,
    ``G_av[t, i, j] = PL_a[t, i]·PL_v[t, j]``, ``G_va[t, i, j] = PL_v[t, i]·PL_a[t, j]``
    (diagonal included); each (B, T, K, K).
    """

    def outer(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) * y.unsqueeze(-2)  # (B, T, K, K)

    return {
        "aa": outer(pl_audio, pl_audio),
        "av": outer(pl_audio, pl_visual),
        "vv": outer(pl_visual, pl_visual),
        "va": outer(pl_visual, pl_audio),
    }


class CoOccurrence(LossTerm):
    """``Σ_map MSE(attn_maps[map], G_map)``: the last SECM layer's class-token attention
    should follow which events co-occur in each second (docs/avvp.md §5.5).

    Targets come from ``pl_audio`` / ``pl_visual``. A batch without pseudo labels (HAN
    features, or val/test batches) uses, with ``fallback="weak_labels"`` (default), the
    weak labels tiled over the 10 seconds as both modalities' per-second labels:
    ``G[t, i, j] = y_i·y_j`` for every t and every map. ``fallback="error"`` raises
    instead. ``maps`` selects which maps enter (e.g. ``[aa, vv]`` with
    ``model/secm=intra_only``).
    """

    name = "cooccurrence"

    def __init__(
        self,
        *,
        weight: float = 1.0,
        maps: Sequence[str] = MAP_KEYS,
        fallback: str = "weak_labels",
    ) -> None:
        super().__init__(weight=weight)
        unknown = [m for m in maps if m not in MAP_KEYS]
        if unknown or not maps:
            raise ValueError(f"maps {list(maps)}: choose a non-empty subset of {MAP_KEYS}")
        if fallback not in ("weak_labels", "error"):
            raise ValueError(f"fallback={fallback!r}: choose weak_labels or error")
        self.maps = tuple(maps)
        self.fallback = fallback

    def per_second_labels(self, batch: Batch, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(pl_audio, pl_visual), each (B, T, K): the pseudo labels or the tiled weak labels."""
        if "pl_audio" in batch and "pl_visual" in batch:
            return batch["pl_audio"], batch["pl_visual"]
        if self.fallback == "error":
            self.batch_key(batch, "pl_audio", "co-occurrence targets need pseudo labels")
            self.batch_key(batch, "pl_visual", "co-occurrence targets need pseudo labels")
        label = self.batch_key(batch, "label", "the weak labels")
        tiled = label.unsqueeze(1).expand(-1, steps, -1)  # (B, T, K)
        return tiled, tiled

    def forward(self, output: ParsingOutput, batch: Batch) -> torch.Tensor:
        maps = output.attn_maps or {}
        absent = [m for m in self.maps if m not in maps]
        if absent:
            raise MissingLossInput(
                f"loss term 'cooccurrence' needs attention maps {absent}, which this network "
                f"does not produce (it has {sorted(maps)}; the SECM parts making them are off: "
                f"model/secm=attention); set loss.terms.cooccurrence.maps to the maps present, "
                f"{_remove_hint(self.name)}"
            )
        first = maps[self.maps[0]]
        pl_a, pl_v = self.per_second_labels(batch, first.shape[1])
        targets = cooccurrence_targets(pl_a.to(first.dtype), pl_v.to(first.dtype))
        total = first.new_zeros(())
        for key in self.maps:
            total = total + F.mse_loss(maps[key], targets[key])
        return total
