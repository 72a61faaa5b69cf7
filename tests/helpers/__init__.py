"""What several test modules use: configs and runs (``training``), hand-made datasets
(``datasets``), a stand-in network (``tiny``), the loop reference of the metrics
(``reference_metrics``) and a fabricated sweep (``sweeps``). Test modules import from
here, never from each other."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("AVVP_SHARED", REPO.parent / "shared"))
