"""The tests' tiny extractors: a fixed ``--weights`` folder per test process.

huggingface_hub reads ``HF_HUB_CACHE`` when it is imported, so tests/conftest.py points it
at :data:`HF_CACHE` before anything imports it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from avvp_lit.extract.stand_ins import random_weights

WEIGHTS = Path(tempfile.gettempdir()) / f"avvp-test-weights-{os.getpid()}"
HF_CACHE = WEIGHTS / "huggingface"


def tiny_weights() -> Path:
    """Build (once per process) and return the ``--weights`` folder of tiny extractors."""
    return random_weights(WEIGHTS)
