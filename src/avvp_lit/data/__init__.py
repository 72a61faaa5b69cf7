"""LLP data: annotations, feature stores, the synthetic generator and the DataModule."""

from avvp_lit.data.annotations import (
    AnnotationError,
    SplitAnnotations,
    feature_id,
    load_split,
)

__all__ = ["AnnotationError", "SplitAnnotations", "feature_id", "load_split"]
