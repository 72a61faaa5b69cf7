"""Known-harmless third-party messages kept off the console (never the project's own).

- Lightning's ``isinstance(treespec, LeafSpec)`` deprecation warning (from its own
  pytree helper, nothing a user can change);
- Lightning's tips advertising its cloud products ("litlogger" when a Trainer is built,
  "litmodels" when a checkpoint callback is), each starting with "💡 Tip".
The W&B "anonymous setting" warning is avoided where the logger is made
(:func:`avvp_lit.engine.loggers.wandb_logger`).
"""

from __future__ import annotations

import logging
import warnings

LIGHTNING_INFO_LOGGER = "lightning.pytorch.utilities.rank_zero"


ADVERTISED = ("litlogger", "litmodels")


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(name in message for name in ADVERTISED)


_FILTER = _DropAdvertisements()


def quiet_third_party() -> None:
    """Install the filters (idempotent)."""
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    logger = logging.getLogger(LIGHTNING_INFO_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
