"""`avvp-train` (= ``python -m avvp_lit.cli.train``): fit, then test the best checkpoint
(:func:`avvp_lit.engine.tasks.train_and_test`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from avvp_lit.utils.errors import run_hydra_app


@hydra.main(version_base="1.3", config_path="pkg://avvp_lit.conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    # imported here: a multirun's launcher process, --help and Hydra's own errors need no
    # torch or Lightning (seconds of start-up); the job itself imports them
    from avvp_lit.engine.rundir import run_task
    from avvp_lit.engine.tasks import train_and_test

    payload = run_task("avvp-train", train_and_test, cfg)
    # the Optuna sweeper maximises this: the model-selection score, never a test number
    return None if payload is None else payload["val_seg_type_best"]


def main() -> None:
    run_hydra_app("avvp-train", _hydra_main)


if __name__ == "__main__":
    main()
