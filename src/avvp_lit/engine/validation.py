"""Config values checked before any work, so that a mistake surfaces as one named line
(the key and what it must be) instead of a traceback minutes into a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from avvp_lit.data.annotations import AUDIO_LABEL_FILES
from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.data.stores import ON_MISSING, STORE_KINDS
from avvp_lit.engine.execution import validate_execution
from avvp_lit.metrics import GATINGS
from avvp_lit.utils.errors import ConfigError, one_line

# the groups a run builds objects from, resolved whole before any work
RESOLVED_GROUPS = ("data", "model", "loss", "optimizer", "scheduler", "metrics", "trainer")


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


def check_resolvable(cfg: DictConfig, groups: tuple[str, ...] = RESOLVED_GROUPS) -> None:
    """Every interpolation of the run's groups resolves: a broken one (``data.synthetic=null``
    while ``data.root`` is the generator's default folder) is a named config error, not
    OmegaConf's traceback when the data module is built."""
    for group in groups:
        if group not in cfg:
            continue
        try:
            OmegaConf.to_container(cfg[group], resolve=True)
        except OmegaConfBaseException as error:
            key = getattr(error, "full_key", None) or group
            reason = one_line(str(getattr(error, "msg", error)).split("full_key:")[0], 240)
            hint = ""
            if key == "data.root" and OmegaConf.select(cfg, "data.synthetic") is None:
                hint = " (data.synthetic=null switches the generator off: give data.root=DIR)"
            raise ConfigError(f"{key} does not resolve: {reason}{hint}") from None


def validate_config(cfg: DictConfig) -> None:
    """Fail before any work on values whose mistakes would otherwise surface late."""
    check_resolvable(cfg)
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
    validate_execution(cfg)
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
