"""`avvp-parse ckpt=PATH input=DIR`: a trained model's parsed events, per video
(:func:`avvp_lit.engine.parsing.parse_videos`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from avvp_lit.utils.errors import run_hydra_app
from avvp_lit.utils.memory import reuse_freed_memory


@hydra.main(version_base="1.3", config_path="pkg://avvp_lit.conf", config_name="parse")
def _hydra_main(cfg: DictConfig) -> None:
    # imported here: --help and Hydra's own errors need no torch or Lightning
    from avvp_lit.engine.parsing import parse_videos
    from avvp_lit.engine.rundir import run_task

    reuse_freed_memory()  # video input runs the extractors
    run_task("avvp-parse", parse_videos, cfg)


def main() -> None:
    run_hydra_app("avvp-parse", _hydra_main)


if __name__ == "__main__":
    main()
