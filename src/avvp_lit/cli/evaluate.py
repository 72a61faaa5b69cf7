"""`avvp-evaluate ckpt=PATH [data=...] [split=val|test]`: score an existing checkpoint
(:func:`avvp_lit.engine.tasks.evaluate_checkpoint`).

``ckpt`` is a checkpoint written by `avvp-train` (the network config travels inside it)
or a network file written by `avvp-convert` from the original code's weights. The run
directory receives the same result files as a training run.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from avvp_lit.utils.errors import run_hydra_app


@hydra.main(version_base="1.3", config_path="pkg://avvp_lit.conf", config_name="evaluate")
def _hydra_main(cfg: DictConfig) -> None:
    # imported here: a multirun's launcher process, --help and Hydra's own errors need no
    # torch or Lightning (seconds of start-up); the job itself imports them
    from avvp_lit.engine.rundir import run_task
    from avvp_lit.engine.tasks import evaluate_checkpoint

    run_task("avvp-evaluate", evaluate_checkpoint, cfg)


def main() -> None:
    run_hydra_app("avvp-evaluate", _hydra_main)


if __name__ == "__main__":
    main()
