"""The loss a training step minimises: a weighted sum of named terms."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from avvp_lit.losses.terms import Batch, LossTerm
from avvp_lit.models.output import ParsingOutput


class CompositeLoss(nn.Module):
    """``loss(output, batch) -> {name: weight·term, ..., "total": Σ}``.

    ``terms`` maps names to :class:`LossTerm` instances (``conf/loss/*.yaml``); a ``None``
    entry is dropped, so ``loss.terms.<name>=null`` (or ``~loss.terms.<name>``) removes a
    term from the command line.
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
        values = {name: term.weight * term(output, batch) for name, term in self.terms.items()}
        values["total"] = torch.stack(list(values.values())).sum()
        return values
