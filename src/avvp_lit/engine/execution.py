"""How a network runs, never what it computes: the fused CPU kernels (``fused``) and
``torch.compile`` (``compile``)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from avvp_lit.models.fused import parts_without_twin, use_fused
from avvp_lit.utils.errors import ConfigError
from avvp_lit.utils.progress import log

FUSED_CHOICES = ("auto", True, False)
FLOAT32_PRECISIONS = ("32", "32-true")


def validate_execution(cfg: DictConfig) -> None:
    fused = cfg.get("fused", "auto")
    if fused not in FUSED_CHOICES:
        raise ConfigError(f"fused={fused!r} is not allowed; choose one of auto, true, false")
    compile_ = cfg.get("compile", False)
    if compile_ not in (True, False):
        raise ConfigError(f"compile={compile_!r} is not allowed; choose true or false")
    if fused is True and compile_:
        raise ConfigError(
            "fused=true cannot be compiled (its hand-written autograd functions break the "
            "graph): choose fused=auto (plain blocks under compile) or compile=false"
        )


def runs_on_cpu(accelerator: str) -> bool:
    """Whether a Trainer with this ``accelerator`` setting computes on the CPU."""
    if accelerator == "auto":
        return not torch.cuda.is_available()
    return accelerator == "cpu"


def fused_wins(*, accelerator: str, precision: str, compile: bool) -> bool:
    """Where the fused CPU kernels are measured faster than the plain blocks (README,
    "Benchmarks"): float32 on a CPU, not compiled. Everywhere else the plain blocks run."""
    return runs_on_cpu(accelerator) and str(precision) in FLOAT32_PRECISIONS and not compile


def choose_blocks(network: nn.Module, cfg: DictConfig) -> nn.Module:
    """Switch ``network`` to its fused CPU blocks or keep the plain ones, in place.

    ``fused=auto`` takes the fused blocks where they are measured faster
    (:func:`fused_wins`) and every block inside the FGSE layers has a fused twin; a
    network with a part that has none (a new SECM or LGSF part, say) runs its plain
    blocks, said once in the log. ``fused=true`` on such a network is a config error
    naming the parts.
    """
    validate_execution(cfg)
    fused = cfg.get("fused", "auto")
    missing = parts_without_twin(network)
    if fused == "auto":
        trainer = cfg.get("trainer") or {}
        fused = fused_wins(
            accelerator=str(trainer.get("accelerator", "cpu")),
            precision=str(trainer.get("precision", "32-true")),
            compile=bool(cfg.get("compile", False)),
        )
        if fused and missing:
            log.info(
                "fused=auto: the plain blocks run, since these parts have no fused twin: "
                + ", ".join(missing)
            )
            fused = False
    elif fused is True and missing:
        raise ConfigError(
            f"fused=true: no fused twin for {', '.join(missing)}; choose fused=auto or false"
        )
    return use_fused(network, bool(fused))


def compile_if_asked(network: nn.Module, cfg: DictConfig) -> nn.Module:
    """``torch.compile`` the network in place when ``compile=true``."""
    if cfg.get("compile", False):
        network.compile()
    return network


def prepare_network(network: nn.Module, cfg: DictConfig) -> nn.Module:
    """Choose how the network runs, not what it computes, in place: its blocks
    (:func:`choose_blocks`), then ``torch.compile`` (:func:`compile_if_asked`)."""
    return compile_if_asked(choose_blocks(network, cfg), cfg)
