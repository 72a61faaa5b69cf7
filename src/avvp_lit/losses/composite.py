"""The loss a training step minimises: a weighted sum of named terms."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from avvp_lit.losses.terms import Batch, LossTerm
from avvp_lit.models.output import ParsingOutput
from avvp_lit.models.precision import float32_forward


class CompositeLoss(nn.Module):
    """``loss(output, batch) -> {name: weight·term, ..., "total": Σ}``.

    ``terms`` maps names to :class:`LossTerm` instances (``conf/loss/*.yaml``); a ``None``
    entry is dropped, so ``loss.terms.<name>=null`` (or ``~loss.terms.<name>``) removes a
    term from the command line. The terms are computed in float32, also under bf16
    autocast (``trainer.precision=bf16-mixed``).
    """

    def __init__(self, *, terms: Mapping[str, LossTerm | None]) -> None:
        super().__init__()
        kept = {str(name): term for name, term in terms.items() if term is not None}
        if not kept:
            raise ValueError("CompositeLoss needs at least one term (loss.terms is empty)")
        for name, term in kept.items():
            if not isinstance(term, LossTerm):
                raise TypeError(f"loss.terms.{name} is {type(term).__name__}, not a LossTerm")
        self.terms = nn.ModuleDict(kept)

    @property
    def weights(self) -> dict[str, float]:
        return {name: term.weight for name, term in self.terms.items()}

    def forward(self, output: ParsingOutput, batch: Batch) -> dict[str, torch.Tensor]:
        fields = {field.name: getattr(output, field.name) for field in dataclasses.fields(output)}
        return self._weighted_terms(fields, batch)

    @float32_forward
    def _weighted_terms(self, fields: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        """The terms in float32 (under autocast too): ``fields`` are the output's, as a
        dict so that ``custom_fwd`` casts them."""
        output = ParsingOutput(**fields)
        values = {name: term.weight * term(output, batch) for name, term in self.terms.items()}
        values["total"] = torch.stack(list(values.values())).sum()
        return values
