"""Parsing networks built from swappable blocks (MM-CSE, HAN) and their converters.

Compose with Hydra (``model=mmcse`` / ``model=han`` plus block overrides such as
``model/decoupling=shared``) or load a released checkpoint of the original code with
:func:`avvp_lit.models.convert.load_official`.
"""

from avvp_lit.models.networks import ClassWiseParsingNetwork, HolisticParsingNetwork
from avvp_lit.models.output import AUDIO, MAP_KEYS, VISUAL, ParsingOutput

__all__ = [
    "AUDIO",
    "MAP_KEYS",
    "VISUAL",
    "ClassWiseParsingNetwork",
    "HolisticParsingNetwork",
    "ParsingOutput",
]
