"""Loss terms of HAN and MM-CSE and the weighted composite a training step minimises.

``conf/loss/mmcse.yaml`` and ``conf/loss/han.yaml`` reproduce the published formulas and
weights (docs/avvp.md §4-5); each term is a module ``term(output, batch) -> scalar``.
"""

from avvp_lit.losses.composite import CompositeLoss
from avvp_lit.losses.terms import (
    CoOccurrence,
    LossTerm,
    MissingLossInput,
    ModalityBCE,
    Orthogonality,
    PseudoLabelBCE,
    Reconstruction,
    VideoBCE,
    clamped_bce,
    cooccurrence_targets,
    orthogonality,
)

__all__ = [
    "CoOccurrence",
    "CompositeLoss",
    "LossTerm",
    "MissingLossInput",
    "ModalityBCE",
    "Orthogonality",
    "PseudoLabelBCE",
    "Reconstruction",
    "VideoBCE",
    "clamped_bce",
    "cooccurrence_targets",
    "orthogonality",
]
