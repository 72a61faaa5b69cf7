"""Reading a stored network without running code from the file.

Two kinds of file hold a network: an `avvp-train` Lightning checkpoint (the network's
Hydra config under ``checkpoint["avvp_lit"]["network_config"]``, weights under
``state_dict`` with a ``network.`` prefix) and an `avvp-convert` network file
(``{"format": "avvp-lit-network", "arch", "model_config", "state_dict"}``).
:func:`read_network` reads both.

Files come from other people, so two routes to code execution are closed:
- ``torch.load(..., weights_only=True)``: the unpickler builds tensors and plain
  containers only, never an arbitrary object;
- a stored config is instantiated only if every ``_target_`` in it is one of the
  project's own network blocks (:func:`allowed_targets`: the ``nn.Module`` classes of
  ``avvp_lit.models``), with no interpolation and no Hydra key other than ``_target_``
  and ``_partial_``. A block of your own joins with :func:`register_block` (in code) or
  by naming it as trusted (``avvp-evaluate ... trusted_blocks=[mypkg.MyNet]``).
Anything else is a :class:`NetworkFileError` naming the file and the offending key.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pickle
import pkgutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from torch import nn

from avvp_lit.utils.errors import InputError, first_names, one_line

NETWORK_FILE_FORMAT = "avvp-lit-network"
HYDRA_KEYS = frozenset({"_target_", "_partial_"})
STATE_PREFIX = "network."
KEYS_SHOWN = 5

_registered: set[str] = set()


class NetworkFileError(InputError):
    """A checkpoint or network file that cannot be read as a network of this project."""


@dataclass(frozen=True)
class LoadedNetwork:
    network: nn.Module  # eval mode
    model_config: dict[str, Any]
    kind: str  # "checkpoint" (avvp-train) or "network file" (avvp-convert)


def target_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.cache
def project_blocks() -> frozenset[str]:
    """The ``_target_`` of every ``nn.Module`` class defined in a module of
    ``avvp_lit.models`` (every module of the package is read: a new block file needs no
    registration)."""
    import avvp_lit.models as package

    names = set()
    for info in pkgutil.iter_modules(package.__path__, prefix=f"{package.__name__}."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, nn.Module) and cls.__module__ == module.__name__:
                names.add(target_name(cls))
    return frozenset(names)


def allowed_targets() -> frozenset[str]:
    return project_blocks() | frozenset(_registered)


def register_block(cls: type[nn.Module]) -> type[nn.Module]:
    """Allow ``cls`` as a ``_target_`` of stored network configs (usable as a decorator)."""
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise TypeError(f"only nn.Module classes can be registered, not {cls!r}")
    _registered.add(target_name(cls))
    return cls


def check_network_config(
    config: Any, *, source: str, trusted: Collection[str] = (), path: str = "model"
) -> None:
    """Raise :class:`NetworkFileError` unless ``config`` only names allowed blocks (the
    project's, registered ones, or the ``trusted`` ``_target_`` names)."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            where = f"{path}.{key}"
            if not isinstance(key, str):
                raise NetworkFileError(f"{source}: {path} has a non-string key {key!r}")
            if key.startswith("_") and key not in HYDRA_KEYS:
                raise NetworkFileError(f"{source}: {where} is not allowed in a stored config")
            if key == "_target_" and value not in allowed_targets() | set(trusted):
                raise NetworkFileError(
                    f"{source}: {where}={value!r} is not one of this project's network "
                    "blocks; refusing to instantiate it (a block of your own: "
                    "trusted_blocks=[...] or avvp_lit.models.loading.register_block)"
                )
            check_network_config(value, source=source, trusted=trusted, path=where)
    elif isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            check_network_config(value, source=source, trusted=trusted, path=f"{path}[{i}]")
    elif isinstance(config, str) and "${" in config:
        raise NetworkFileError(f"{source}: {path} holds an interpolation ({config!r})")
    elif not isinstance(config, (str, int, float, bool, type(None))):
        raise NetworkFileError(f"{source}: {path} holds a {type(config).__name__}")


def build_network(
    config: Mapping[str, Any], *, source: str = "model config", trusted: Collection[str] = ()
) -> nn.Module:
    """Instantiate a network from a (resolved) model config of allowed blocks only."""
    check_network_config(config, source=source, trusted=trusted)
    if "_target_" not in config:
        raise NetworkFileError(f"{source}: the model config has no _target_")
    return hydra.utils.instantiate(dict(config), _convert_="none")


def load_payload(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` with one named error for unreadable files."""
    path = Path(path)
    if not path.is_file():
        raise NetworkFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise NetworkFileError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = one_line(error)
        if "weights_only" in text or "Unsupported global" in text:
            reason = "it holds objects other than tensors and plain containers"
        else:
            reason = f"not a PyTorch file ({text[:120]})"
        raise NetworkFileError(f"{path}: refusing to load: {reason}") from error
    except MemoryError:
        raise
    except Exception as error:  # whatever the unpickler makes of a damaged file
        reason = one_line(error, 160)
        raise NetworkFileError(
            f"{path}: not a readable checkpoint (truncated, or not a PyTorch file: {reason})"
        ) from error


def check_weights_fit(network: nn.Module, state: Mapping[str, Any], *, source: str) -> None:
    """Raise :class:`NetworkFileError` naming the keys unless ``state`` fits ``network``."""
    ours = network.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    shape = [
        k
        for k in ours
        if k in state
        and (not isinstance(state[k], torch.Tensor) or state[k].shape != ours[k].shape)
    ]
    if missing or unexpected or shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shape)):
            if keys:
                parts.append(f"{len(keys)} {label} ({first_names(keys, KEYS_SHOWN)})")
        raise NetworkFileError(
            f"{source}: the weights do not fit the stored network config: "
            + "; ".join(parts)
            + " (a file of another architecture or feature set?)"
        )


def checkpoint_network_state(payload: Any, *, source: str) -> dict[str, Any]:
    """The network weights of an `avvp-train` checkpoint (``network.`` prefix removed)."""
    if not (isinstance(payload, Mapping) and "avvp_lit" in payload and "state_dict" in payload):
        raise NetworkFileError(f"{source}: not an avvp-train checkpoint")
    full = payload["state_dict"]
    if not isinstance(full, Mapping):
        raise NetworkFileError(f"{source}: state_dict is not a mapping")
    return {k[len(STATE_PREFIX) :]: v for k, v in full.items() if k.startswith(STATE_PREFIX)}


def network_from_payload(
    payload: Any, *, source: str, trusted: Collection[str] = ()
) -> LoadedNetwork:
    """The network (eval mode) of a loaded checkpoint or network file."""
    if isinstance(payload, Mapping) and payload.get("format") == NETWORK_FILE_FORMAT:
        config, state, kind = payload.get("model_config"), payload.get("state_dict"), "network file"
    elif isinstance(payload, Mapping) and "avvp_lit" in payload and "state_dict" in payload:
        stored = payload["avvp_lit"]
        config = stored.get("network_config") if isinstance(stored, Mapping) else None
        state, kind = checkpoint_network_state(payload, source=source), "checkpoint"
    else:
        raise NetworkFileError(
            f"{source}: neither an avvp-train checkpoint nor an avvp-convert network file "
            "(convert the original code's weights with avvp-convert first)"
        )
    if not isinstance(config, Mapping):
        raise NetworkFileError(f"{source}: the {kind} stores no network config")
    if not isinstance(state, Mapping):
        raise NetworkFileError(f"{source}: the {kind} stores no weights")
    network = build_network(config, source=source, trusted=trusted)
    check_weights_fit(network, state, source=source)
    network.load_state_dict(state)
    return LoadedNetwork(network.eval(), dict(config), kind)


def read_network(path: str | Path, *, trusted: Collection[str] = ()) -> LoadedNetwork:
    """The network stored in ``path`` (checkpoint or network file), in eval mode;
    ``trusted``: ``_target_`` names allowed beyond the project's blocks."""
    return network_from_payload(load_payload(path), source=str(path), trusted=trusted)
