"""Building a run from a composed config, shared by `avvp-train` and `avvp-evaluate`."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch import nn

from avvp_lit.classes import NUM_CLASSES
from avvp_lit.data.annotations import AUDIO_LABEL_FILES
from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.data.stores import ON_MISSING, STORE_KINDS
from avvp_lit.engine.callbacks import AtomicCheckpointIO, LineProgress
from avvp_lit.engine.module import AVVPModule
from avvp_lit.inference import forward_eval
from avvp_lit.losses import MissingLossInput
from avvp_lit.metrics import GATINGS
from avvp_lit.models.fused import use_fused
from avvp_lit.utils.atomic import atomic_write_bytes, temporary_sibling
from avvp_lit.utils.console import quiet_third_party
from avvp_lit.utils.errors import (
    EXIT_BAD_INPUT,
    ConfigError,
    InputError,
    exit_on_input_error,
    one_line,
    task_started,
)
from avvp_lit.utils.lock import LOCK_NAME, run_directory_lock

Result = TypeVar("Result")


def run_task(program: str, task: Callable[[DictConfig], Result], cfg: DictConfig) -> Result:
    """``task(cfg)`` inside a Hydra app, holding the run directory's lock
    (:mod:`avvp_lit.utils.lock`): bad input (a :class:`ConfigError`, an annotation, feature
    or checkpoint error, an unreadable file, a directory in use) ends ``program`` with one
    line and exit status 2 (:mod:`avvp_lit.utils.errors`)."""
    task_started()
    quiet_third_party()
    return exit_on_input_error(program, _locked, task, cfg)


def _locked(task: Callable[[DictConfig], Result], cfg: DictConfig) -> Result:
    """Run ``task`` holding the run directory's lock (global rank 0; other ranks of a
    multi-process run share their launcher's directory). The lock is taken before the
    clean-up guard, so a folder another process holds is never touched."""
    run_dir = OmegaConf.select(cfg, "paths.output_dir") or cfg.get("output_dir")
    if run_dir is None or rank_zero_only.rank != 0:
        return task(cfg)
    with run_directory_lock(run_dir):
        try:
            result = task(cfg)
        except InputError:
            discard_failed_run(Path(run_dir))
            raise
    point_latest(Path(run_dir))
    return result


HYDRA_ONLY = {".hydra", LOCK_NAME}
RESOLVED_CONFIG = "config.yaml"
EMPTY_UNLESS_RESULTS = {"checkpoints", "figures"}
# logger folders, and the files in them that mean something was logged (then kept)
LOGGED: dict[str, str] = {
    "csv": "metrics.csv",
    "wandb": "*run-*",
    "tensorboard": "events.out.tfevents*",
}


def _disposable(entry: Path) -> bool:
    """Nothing of value: Hydra's files, logs, the resolved config, logger folders in
    which nothing was logged, empty checkpoint and figure folders."""
    if entry.name in HYDRA_ONLY:
        return True
    if entry.is_file():
        return entry.suffix == ".log" or entry.name == RESOLVED_CONFIG
    if entry.name in LOGGED:
        return not any(entry.rglob(LOGGED[entry.name]))
    return entry.name in EMPTY_UNLESS_RESULTS and not any(p.is_file() for p in entry.rglob("*"))


def remove_if_untouched(run_dir: Path) -> None:
    """Delete a run folder that holds nothing but what Hydra, the loggers and the config
    writer put there before the task produced anything (no checkpoint, figure, result or
    logged metric): a run stopped by bad input leaves no folder behind."""
    if not run_dir.is_dir():
        return
    if all(_disposable(entry) for entry in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def discard_failed_run(run_dir: Path) -> None:
    """After bad input stopped a task: finish the W&B run this attempt opened and, when
    nothing was logged to it (bad input found before training), delete it from
    ``run_dir`` so ``wandb sync`` never uploads it; then drop the run folder when nothing
    of value is in it (:func:`remove_if_untouched`). Earlier attempts' checkpoints and
    W&B runs, and any run that logged metrics, are kept."""
    wandb = sys.modules.get("wandb")
    run = None if wandb is None else wandb.run
    if run is not None:
        attempt = Path(run.dir).parent  # <run_dir>/wandb/offline-run-<time>-<id>
        logged = run.step > 0 or any(not k.startswith("_") for k in run.summary.keys())
        wandb.finish(exit_code=EXIT_BAD_INPUT)
        inside = attempt.resolve().is_relative_to(run_dir.resolve())
        if inside and not logged:
            shutil.rmtree(attempt, ignore_errors=True)
    remove_if_untouched(run_dir)


def point_latest(run_dir: Path) -> Path | None:
    """``outputs/<task>/latest`` -> the run that just finished (a relative link, replaced
    atomically), for runs in Hydra's ``outputs/<task>/runs/<time>`` layout."""
    if run_dir.parent.name != "runs":
        return None
    link = run_dir.parent.parent / "latest"
    tmp = temporary_sibling(link)
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(Path("runs") / run_dir.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:  # a file system without links: the pointer is a convenience
        tmp.unlink(missing_ok=True)
        return None
    return link


def _require_choice(cfg: DictConfig, key: str, allowed: tuple[str, ...]) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# (key, what it must be, test): checked where the key exists, before any data is read
VALUE_RULES: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
    ("seed", "an integer", _integer),
    (
        "trainer.max_epochs",
        "an integer >= 1 (or -1)",
        lambda v: _integer(v) and (v >= 1 or v == -1),
    ),
    (
        "trainer.gradient_clip_val",
        "null or a number >= 0",
        lambda v: v is None or _number(v) and v >= 0,
    ),
    ("trainer.accumulate_grad_batches", "an integer >= 1", lambda v: _integer(v) and v >= 1),
    ("data.batch_size", "an integer >= 1", lambda v: _integer(v) and v >= 1),
    (
        "data.eval_batch_size",
        "null or an integer >= 1",
        lambda v: v is None or _integer(v) and v >= 1,
    ),
    ("data.num_workers", "an integer >= 0", lambda v: _integer(v) and v >= 0),
    ("batch_size", "an integer >= 1", lambda v: _integer(v) and v >= 1),
    ("optimizer.lr", "a number > 0", lambda v: _number(v) and v > 0),
    ("optimizer.weight_decay", "a number >= 0", lambda v: _number(v) and v >= 0),
    ("scheduler.step_size", "an integer >= 1", lambda v: _integer(v) and v >= 1),
    ("scheduler.gamma", "a number > 0", lambda v: _number(v) and v > 0),
    ("metrics.video_threshold", "a number in [0, 1]", lambda v: _number(v) and 0 <= v <= 1),
    ("metrics.segment_threshold", "a number in [0, 1]", lambda v: _number(v) and 0 <= v <= 1),
    ("test", "true or false", lambda v: isinstance(v, bool)),
)
_ABSENT = object()


def validate_values(cfg: DictConfig) -> None:
    """Each value of :data:`VALUE_RULES` present in ``cfg`` has the right type and range,
    and the metric protocol (gating, thresholds, per-class thresholds) is valid."""
    for key, expected, test in VALUE_RULES:
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=True)
        except Exception as error:  # an interpolation that does not resolve
            raise ConfigError(f"{key}: {one_line(error, 200)}") from None
        if value is not _ABSENT and not test(value):
            raise ConfigError(f"{key}={value!r} is not allowed; it must be {expected}")
    if cfg.get("metrics") is not None:
        from avvp_lit.metrics.functional import protocol_dict

        _require_choice(cfg, "metrics.gating", GATINGS)
        try:
            protocol_dict(**OmegaConf.to_container(cfg.metrics, resolve=True))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"metrics: {error}") from None


def validate_config(cfg: DictConfig) -> None:
    """Fail before any work on values whose mistakes would otherwise surface late."""
    validate_values(cfg)
    _require_choice(cfg, "data.feature_set", tuple(FEATURE_SETS))
    _require_choice(cfg, "data.audio_labels", tuple(AUDIO_LABEL_FILES))
    _require_choice(cfg, "data.on_missing", ON_MISSING)
    _require_choice(cfg, "data.store", STORE_KINDS)
    if OmegaConf.select(cfg, "data.generate", default="auto") not in ("auto", True, False):
        raise ConfigError(
            f"data.generate={cfg.data.generate!r} is not allowed; choose auto, true or false"
        )
    if OmegaConf.select(cfg, "data.on_device", default="auto") not in ("auto", True, False):
        raise ConfigError(
            f"data.on_device={cfg.data.on_device!r} is not allowed; choose auto, true or false"
        )
    _validate_execution(cfg)
    expected = OmegaConf.select(cfg, "model.feature_set")
    if expected is not None and expected != cfg.data.feature_set:
        raise ConfigError(
            f"model.feature_set={expected!r} but data.feature_set={cfg.data.feature_set!r}: "
            f"choose model/projection={cfg.data.feature_set} (or data with {expected} features)"
        )
    terms = OmegaConf.select(cfg, "loss.terms") or {}
    if "pseudo_label" in terms and not FEATURE_SETS[cfg.data.feature_set].has_pseudo_labels:
        raise ConfigError(
            f"loss.terms.pseudo_label needs per-second pseudo labels, which feature set "
            f"{cfg.data.feature_set!r} does not have: drop it with ~loss.terms.pseudo_label, "
            "choose loss=han, or use the valor features"
        )
    if OmegaConf.is_missing(cfg.data, "root"):
        raise ConfigError("data.root is required for real LLP data: data.root=/path/to/llp")


FUSED_CHOICES = ("auto", True, False)
FLOAT32_PRECISIONS = ("32", "32-true")


def _validate_execution(cfg: DictConfig) -> None:
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


def prepare_network(network: nn.Module, cfg: DictConfig) -> nn.Module:
    """Choose how the network runs, not what it computes: the fused CPU kernels
    (``fused``: auto | true | false) and ``torch.compile`` (``compile``), in place."""
    _validate_execution(cfg)
    compile_ = bool(cfg.get("compile", False))
    fused = cfg.get("fused", "auto")
    if fused == "auto":
        trainer = cfg.get("trainer") or {}
        fused = fused_wins(
            accelerator=str(trainer.get("accelerator", "cpu")),
            precision=str(trainer.get("precision", "32-true")),
            compile=compile_,
        )
    use_fused(network, bool(fused))
    if compile_:
        network.compile()
    return network


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def write_resolved_config(cfg: DictConfig, trainer: L.Trainer) -> str:
    """The fully resolved config as YAML, written to ``config.yaml`` and logged as the
    hyperparameters of every logger of the run (rank 0 only)."""
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    if trainer.is_global_zero:
        atomic_write_bytes(output_dir(cfg) / "config.yaml", resolved.encode())
        config = OmegaConf.to_container(cfg, resolve=True)
        for logger in trainer.loggers:
            logger.log_hyperparams(config)
    return resolved


def task_overrides() -> list[str]:
    """The command-line overrides of this run (empty outside a Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate each entry with a ``_target_`` of a callbacks/logger group."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def probe_batch(
    feature_set: str, videos: int = 2, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """A zero batch in the layout of a training batch of ``feature_set`` (features,
    pseudo labels where the set has them, weak labels, indices)."""
    batch = {
        m.key: torch.zeros((videos, *m.shape), dtype=dtype)
        for m in FEATURE_SETS[feature_set].modalities
    }
    batch["label"] = torch.zeros(videos, NUM_CLASSES, dtype=dtype)
    batch["index"] = torch.arange(videos)
    return batch


def check_loss_inputs(network: nn.Module, loss: nn.Module, feature_set: str | None) -> None:
    """Run the network and the loss once on a two-video zero batch, so that a block
    choice that does not produce what a loss term needs (``model/secm=none`` with the
    co-occurrence term on), or a network that does not fit the features, is a named
    config error when the run is built rather than a traceback at the first step.

    The probe runs in eval mode without gradients and leaves the random number
    generators as it found them, so a run's numbers do not depend on it.
    """
    if feature_set not in FEATURE_SETS:
        return
    parameter = next(network.parameters(), None)
    batch = probe_batch(feature_set, dtype=torch.float32 if parameter is None else parameter.dtype)
    with torch.random.fork_rng(devices=[]):
        try:
            output = forward_eval(network, batch)
        except RuntimeError as error:
            raise ConfigError(
                f"the network of model={type(network).__name__} does not run on "
                f"data.feature_set={feature_set} features: {one_line(error, 300)}"
            ) from None
        try:
            with torch.no_grad():
                loss(output, batch)
        except MissingLossInput as error:
            raise ConfigError(f"the blocks and the loss do not fit: {error}") from None


def build_module(cfg: DictConfig, network: nn.Module | None = None) -> AVVPModule:
    """The LightningModule of ``cfg``: its loss, optimiser, scheduler and metrics around
    ``network`` (default: a fresh one from ``cfg.model``), prepared to run
    (:func:`prepare_network`)."""
    network_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if network is None:
        network = instantiate(cfg.model)
    loss = instantiate(cfg.loss)
    check_loss_inputs(network, loss, cfg.data.get("feature_set"))
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return AVVPModule(
        network=prepare_network(network, cfg),
        loss=loss,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        metrics=OmegaConf.to_container(cfg.metrics, resolve=True),
        network_config=network_cfg,
    )


def without_terminal(callbacks: list[Any]) -> list[Any]:
    """Without a terminal on stdout, the live progress bar becomes plain log lines."""
    if sys.stdout.isatty() or not any(isinstance(c, RichProgressBar) for c in callbacks):
        return callbacks
    return [c for c in callbacks if not isinstance(c, RichProgressBar)] + [LineProgress()]


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the run's callbacks and loggers; checkpoints
    are written atomically (:class:`~avvp_lit.engine.callbacks.AtomicCheckpointIO`)."""
    callbacks = without_terminal(instantiate_group(cfg.get("callbacks")))
    loggers = instantiate_group(cfg.get("logger"))
    plugins = [instantiate(p) for p in cfg.trainer.get("plugins") or []]
    plugins.append(AtomicCheckpointIO())
    return instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins, **overrides
    )
