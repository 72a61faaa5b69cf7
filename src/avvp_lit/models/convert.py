"""Checkpoints of the original implementations <-> this project's networks: the key maps.

- :class:`Dims` reads the sizes of a released state dict (MM-CSE ``checkpoint_best.pth``,
  HAN ``MMIL_Net.pt``, VALOR ``checkpoint_best.pt``; a bare state dict or one wrapped
  under ``model``/``state_dict``/..., ``module.`` prefixes stripped): HAN vs CLAP audio,
  80-frame vs per-second visual, hidden/class widths, layers, classes.
- :func:`from_official_state` maps the original weights into our network (the per-class
  branches and heads of the original become our stacked tensors); :func:`to_official`
  is the reverse mapping.
- :func:`official_config` is the original network in this project's blocks, as a model
  config; :func:`load_official` / :func:`convert_checkpoint` build it and load the
  weights; ``avvp-convert`` writes the result with :func:`save_network_file`
  (``{"format": "avvp-lit-network", "arch", "model_config", "state_dict"}``), read back by
  :func:`avvp_lit.models.loading.read_network`.

Modules the original forward passes never use are skipped when loading: HAN's
``audio_encoder``, ``visual_encoder``, ``cmt_encoder`` and ``hat_encoder.norm1/2``, and
MM-CSE's ``av_enhance.final_norm_a/v``, and VALOR's ``hat_encoder.final_norm_a/v`` under
``post_norm`` (VALOR++). :func:`to_official` writes them back (so the
original classes load the result with ``strict=True``) filled with a fresh
initialisation (LayerNorm weight 1, everything else 0): their values cannot matter.
Every other key is mapped; anything unexpected or missing is an error naming the keys.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avvp_lit.models.decoupling import ClassAwareDecoupling
from avvp_lit.models.enhancement import (
    LGSF,
    SECM,
    AlternatingStack,
    HybridAttentionLayer,
    PreNormHybridAttentionLayer,
)
from avvp_lit.models.heads import ClassSpecificHeads, MMILPooling, SharedHeads
from avvp_lit.models.loading import NETWORK_FILE_FORMAT, build_network, load_payload, target_name
from avvp_lit.models.networks import ClassWiseParsingNetwork, HolisticParsingNetwork
from avvp_lit.models.projection import (
    ClapMapProjection,
    FramePooledProjection,
    InputProjection,
    LinearProjection,
    MotionFusion,
)
from avvp_lit.utils.atomic import atomic_path
from avvp_lit.utils.errors import InputError

ARCHS = ("mmcse", "han", "valor")
NORMS = ("post_norm", "pre_norm")  # VALOR's norm_where, not recorded in the weights
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "network", "net")
CLAP_AUDIO_DIM = 768  # MM-CSE treats a 768-wide audio input as the CLAP feature map
RESNET_VISUAL_DIM = 2048  # 80 ResNet-152 frames, pooled 8 per second
DEFAULT_HEADS = {"mmcse": 8, "han": 1, "valor": 8}  # not recorded in the weights
ORIGINAL_DROPOUT = 0.1  # every dropout of both released networks


class ConversionError(InputError):
    """A checkpoint that does not match the architecture; the message names the keys."""


@dataclass(frozen=True)
class Entry:
    """One key of the original state dict: where it lives in ours, or unused.

    ``ours`` is our key; ``index`` selects the slot of a stacked tensor (``()`` = the
    whole tensor); ``shape`` is the original tensor's shape. An unused entry
    (``ours=None``) is skipped when loading and written with ``fill`` by to_official.
    """

    official: str
    ours: str | None
    index: tuple[int, ...] = ()
    shape: tuple[int, ...] = ()
    fill: float = 0.0


# ---------------------------------------------------------------------------- loading


def read_state_dict(source: str | Path | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A state dict from a path or a mapping; unwraps ``{"model": sd}``-style checkpoints
    and strips a ``module.`` (DataParallel / DDP) prefix."""
    obj: Any = source
    if isinstance(source, (str, Path)):
        obj = load_payload(source)
    if not isinstance(obj, Mapping):
        raise ConversionError(f"expected a state dict (a mapping), got {type(obj).__name__}")
    if not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
        else:
            raise ConversionError(
                f"no tensors in the checkpoint and none of {WRAPPER_KEYS} wraps a state dict; "
                f"top-level keys: {sorted(map(str, obj))[:10]}"
            )
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _count(state: Mapping[str, Any], pattern: str) -> int:
    regex = re.compile(pattern)
    found = {int(m.group(1)) for k in state if (m := regex.match(k))}
    return max(found) + 1 if found else 0


def _require(state: Mapping[str, torch.Tensor], key: str, arch: str) -> torch.Tensor:
    if key not in state:
        raise ConversionError(
            f"{key!r} is missing: not a released {arch} checkpoint "
            f"(first keys: {list(state)[:8]}); check --arch"
        )
    return state[key]


@dataclass(frozen=True)
class Dims:
    """Sizes of an original network, read from its weights."""

    arch: str
    audio_dim: int
    visual_dim: int
    motion_dim: int
    hidden_dim: int
    num_classes: int
    num_layers: int
    ffn_dim: int
    class_dim: int = 0  # MM-CSE only
    num_branches: int = 0  # MM-CSE only: classes + background
    norm_where: str = "post_norm"  # VALOR only

    @classmethod
    def from_official(
        cls, state: Mapping[str, torch.Tensor], arch: str, norm_where: str = "post_norm"
    ) -> Dims:
        """``norm_where`` (VALOR: ``post_norm`` as VALOR++, or ``pre_norm``) is not
        recorded in the weights."""
        if arch not in ARCHS:
            raise ConversionError(f"arch={arch!r}: choose one of {ARCHS}")
        if norm_where not in NORMS:
            raise ConversionError(f"norm_where={norm_where!r}: choose one of {NORMS}")
        fc_a = _require(state, "fc_a.weight", arch)
        common = {
            "arch": arch,
            "audio_dim": fc_a.shape[1],
            "visual_dim": _require(state, "fc_v.weight", arch).shape[1],
            "motion_dim": _require(state, "fc_st.weight", arch).shape[1],
            "hidden_dim": fc_a.shape[0],
        }
        if arch in ("han", "valor"):
            return cls(
                **common,
                num_classes=_require(state, "fc_prob.weight", arch).shape[0],
                num_layers=_count(state, r"hat_encoder\.layers\.(\d+)\."),
                ffn_dim=_require(state, "hat_encoder.layers.0.linear1.weight", arch).shape[0],
                norm_where=norm_where if arch == "valor" else "post_norm",
            )
        return cls(
            **common,
            num_classes=_count(state, r"fc_prob\.fc\.(\d+)\."),
            num_layers=_count(state, r"av_enhance\.layers\.(\d+)\."),
            ffn_dim=_require(state, "av_enhance.layers.0.linear1.weight", arch).shape[0],
            class_dim=_require(state, "a_unmix.0.1.weight", arch).shape[0],
            num_branches=_count(state, r"a_unmix\.(\d+)\."),
        )

    @classmethod
    def from_network(cls, network: nn.Module, arch: str) -> Dims:
        state = network.state_dict()

        def get(key: str) -> torch.Tensor:
            if key not in state:
                raise ConversionError(
                    f"the network has no {key!r}: it is not the original {arch} architecture "
                    "(an ablation variant has no counterpart in the original code)"
                )
            return state[key]

        fc_a = get("projection.audio.fc.weight")
        common = {
            "arch": arch,
            "audio_dim": fc_a.shape[1],
            "visual_dim": get("projection.visual.fc.weight").shape[1],
            "motion_dim": get("projection.motion.fc_st.weight").shape[1],
            "hidden_dim": fc_a.shape[0],
            "num_layers": _count(state, r"enhancement\.layers\.(\d+)\."),
            "ffn_dim": get("enhancement.layers.0.linear1.weight").shape[0],
        }
        if arch in ("han", "valor"):
            pre_norm = arch == "valor" and "enhancement.final_norm_a.weight" in state
            return cls(
                **common,
                num_classes=get("heads.fc_prob.weight").shape[0],
                norm_where="pre_norm" if pre_norm else "post_norm",
            )
        branches = get("decoupling.audio.branches.first.weight")
        return cls(
            **common,
            num_classes=get("heads.weight").shape[1],
            class_dim=branches.shape[1],
            num_branches=branches.shape[0],
        )


# ------------------------------------------------------------------------ key tables


def _linear(official: str, ours: str, out_dim: int, in_dim: int) -> Iterator[Entry]:
    yield Entry(f"{official}.weight", f"{ours}.weight", shape=(out_dim, in_dim))
    yield Entry(f"{official}.bias", f"{ours}.bias", shape=(out_dim,))


def _layer_norm(official: str, ours: str | None, dim: int) -> Iterator[Entry]:
    yield Entry(f"{official}.weight", None if ours is None else f"{ours}.weight", (), (dim,), 1.0)
    yield Entry(f"{official}.bias", None if ours is None else f"{ours}.bias", (), (dim,), 0.0)


def _attention(official: str, ours: str | None, dim: int) -> Iterator[Entry]:
    def our(name: str) -> str | None:
        return None if ours is None else f"{ours}.{name}"

    yield Entry(f"{official}.in_proj_weight", our("in_proj_weight"), shape=(3 * dim, dim))
    yield Entry(f"{official}.in_proj_bias", our("in_proj_bias"), shape=(3 * dim,))
    yield Entry(f"{official}.out_proj.weight", our("out_proj.weight"), shape=(dim, dim))
    yield Entry(f"{official}.out_proj.bias", our("out_proj.bias"), shape=(dim,))


def _projection(d: Dims) -> Iterator[Entry]:
    h = d.hidden_dim
    yield from _linear("fc_a", "projection.audio.fc", h, d.audio_dim)
    yield from _linear("fc_v", "projection.visual.fc", h, d.visual_dim)
    yield from _linear("fc_st", "projection.motion.fc_st", h, d.motion_dim)
    yield from _linear("fc_fusion", "projection.motion.fc_fusion", h, 2 * h)


def _mmcse_entries(d: Dims) -> Iterator[Entry]:
    """The released MM-CSE state dict, key by key, in its order."""
    h, c, g, k = d.hidden_dim, d.class_dim, d.num_branches, d.num_classes
    yield from _projection(d)
    vis, aud = "decoupling.visual.branches", "decoupling.audio.branches"
    for b in range(g):
        yield Entry(f"v_unmix.{b}.1.weight", f"{vis}.first.weight", (b,), (c, h))
        yield Entry(f"v_unmix.{b}.1.bias", f"{vis}.first.bias", (b,), (c,))
        yield Entry(f"v_unmix.{b}.4.weight", f"{vis}.rest.0.weight", (b,), (c, c))
        yield Entry(f"v_unmix.{b}.4.bias", f"{vis}.rest.0.bias", (b,), (c,))
    for b in range(g):
        yield Entry(f"a_unmix.{b}.1.weight", f"{aud}.first.weight", (b,), (c, h))
        yield Entry(f"a_unmix.{b}.1.bias", f"{aud}.first.bias", (b,), (c,))
    rec = "decoupling.{}.reconstruction"
    yield from _linear("v_recon.model.1", f"{rec.format('visual')}.fc1", h, g * c)
    yield from _linear("v_recon.model.3", f"{rec.format('visual')}.fc2", h, h)
    yield from _linear("a_recon.0", f"{rec.format('audio')}.fc1", h, g * c)
    yield from _linear("a_recon.2", f"{rec.format('audio')}.fc2", h, h)
    for i in range(d.num_layers):
        src, dst = f"av_enhance.layers.{i}", f"enhancement.layers.{i}"
        yield from _linear(f"{src}.linear1", f"{dst}.linear1", d.ffn_dim, c)
        yield from _linear(f"{src}.linear2", f"{dst}.linear2", c, d.ffn_dim)
        yield from _layer_norm(f"{src}.norm1", f"{dst}.norm1", c)
        yield from _attention(f"{src}.SECM_1.attn", f"{dst}.secm.intra", c)
        yield from _linear(f"{src}.LGSF_1.glob1", f"{dst}.lgsf.intra.glob1", c, c)
        yield from _linear(f"{src}.LGSF_1.glob2", f"{dst}.lgsf.intra.glob2", c, c)
        yield from _attention(f"{src}.SECM_2.attn", f"{dst}.secm.cross", c)
        yield from _linear(f"{src}.LGSF_2.glob", f"{dst}.lgsf.cross.glob", c, c)
        yield from _linear(f"{src}.fc1", f"{dst}.fc1", c, c)
        yield from _linear(f"{src}.fc2", f"{dst}.fc2", c, c)
    yield from _layer_norm("av_enhance.final_norm_a", None, c)  # never used by the original
    yield from _layer_norm("av_enhance.final_norm_v", None, c)
    for head, name in enumerate(("fc_prob", "fc_frame_att", "fc_av_att")):
        for cls in range(k):
            yield Entry(f"{name}.fc.{cls}.weight", "heads.weight", (head, cls), (1, c))
            yield Entry(f"{name}.fc.{cls}.bias", "heads.bias", (head, cls), (1,))
    for mod, ours in (("a", "audio"), ("v", "visual")):
        yield from _linear(f"reduce_{mod}.0", f"decoupling.{ours}.fusion.reduce", c, 2 * c)
    for mod, ours in (("a", "audio"), ("v", "visual")):
        yield from _linear(f"alpha_{mod}.model.1", f"decoupling.{ours}.fusion.alpha.1", h // 2, h)
        yield from _linear(f"alpha_{mod}.model.4", f"decoupling.{ours}.fusion.alpha.4", 1, h // 2)


def _unused_encoder_layer(prefix: str, h: int, ffn: int) -> Iterator[Entry]:
    yield from _attention(f"{prefix}.self_attn", None, h)
    yield Entry(f"{prefix}.linear1.weight", None, shape=(ffn, h))
    yield Entry(f"{prefix}.linear1.bias", None, shape=(ffn,))
    yield Entry(f"{prefix}.linear2.weight", None, shape=(h, ffn))
    yield Entry(f"{prefix}.linear2.bias", None, shape=(h,))
    yield from _layer_norm(f"{prefix}.norm1", None, h)
    yield from _layer_norm(f"{prefix}.norm2", None, h)


def _hat_layers(d: Dims) -> Iterator[Entry]:
    """HAN's and VALOR's ``hat_encoder`` layers (the same layer class in both codes)."""
    h = d.hidden_dim
    for i in range(d.num_layers):
        src, dst = f"hat_encoder.layers.{i}", f"enhancement.layers.{i}"
        yield from _attention(f"{src}.self_attn", f"{dst}.self_attn", h)
        yield from _attention(f"{src}.cm_attn", f"{dst}.cm_attn", h)
        yield from _linear(f"{src}.linear1", f"{dst}.linear1", d.ffn_dim, h)
        yield from _linear(f"{src}.linear2", f"{dst}.linear2", h, d.ffn_dim)
        yield from _layer_norm(f"{src}.norm1", f"{dst}.norm1", h)
        yield from _layer_norm(f"{src}.norm2", f"{dst}.norm2", h)


def _han_entries(d: Dims) -> Iterator[Entry]:
    """The released HAN state dict, key by key, in its order (unused modules included)."""
    h, k = d.hidden_dim, d.num_classes
    for name in ("fc_prob", "fc_frame_att", "fc_av_att"):
        yield from _linear(name, f"heads.{name}", k, h)
    yield from _projection(d)
    for encoder in ("audio_encoder", "visual_encoder", "cmt_encoder"):
        yield from _unused_encoder_layer(f"{encoder}.layers.0", h, d.ffn_dim)
    yield from _layer_norm("cmt_encoder.norm1", None, h)
    yield from _layer_norm("cmt_encoder.norm2", None, h)
    yield from _hat_layers(d)
    yield from _layer_norm("hat_encoder.norm1", None, h)
    yield from _layer_norm("hat_encoder.norm2", None, h)


def _valor_entries(d: Dims) -> Iterator[Entry]:
    """The released VALOR state dict, key by key, in its order: HAN's heads, projection
    and encoder layers, then the encoder's final norms, used only under ``pre_norm``."""
    h, k = d.hidden_dim, d.num_classes
    for name in ("fc_prob", "fc_frame_att", "fc_av_att"):
        yield from _linear(name, f"heads.{name}", k, h)
    yield from _projection(d)
    yield from _hat_layers(d)
    used = d.norm_where == "pre_norm"
    for m in ("a", "v"):
        ours = f"enhancement.final_norm_{m}" if used else None
        yield from _layer_norm(f"hat_encoder.final_norm_{m}", ours, h)


# Prefixes of modules the original forward never uses (ignored whatever their layout).
UNUSED_PREFIXES = {
    "han": (
        "audio_encoder.",
        "visual_encoder.",
        "cmt_encoder.",
        "hat_encoder.norm1.",
        "hat_encoder.norm2.",
    ),
    "mmcse": ("av_enhance.final_norm_a.", "av_enhance.final_norm_v."),
    "valor": ("hat_encoder.final_norm_a.", "hat_encoder.final_norm_v."),  # post_norm
}
ENTRIES = {"mmcse": _mmcse_entries, "han": _han_entries, "valor": _valor_entries}


def unused_prefixes(dims: Dims) -> tuple[str, ...]:
    if dims.arch == "valor" and dims.norm_where == "pre_norm":
        return ()
    return UNUSED_PREFIXES[dims.arch]


def official_entries(dims: Dims) -> list[Entry]:
    """Every key of the original state dict for these sizes, in the original order."""
    return list(ENTRIES[dims.arch](dims))


# ----------------------------------------------------------------------- model config


def _block(cls: type, **settings: Any) -> dict[str, Any]:
    return {"_target_": target_name(cls), **settings}


def _projection_config(dims: Dims) -> dict[str, Any]:
    """The input projection of the original code for these input sizes: the CLAP map path
    for a 768-wide audio input of MM-CSE, a per-second ``fc`` otherwise; ResNet-152 frames
    (2048 wide) pooled 8 per second, per-second visual features otherwise."""
    h = dims.hidden_dim
    clap = dims.arch != "han" and dims.audio_dim == CLAP_AUDIO_DIM
    if clap:
        audio = _block(
            ClapMapProjection,
            in_dim=dims.audio_dim, out_dim=h, map_size=[2, 32], resize=[2, 1024], num_segments=10,
        )  # fmt: skip
    else:
        audio = _block(LinearProjection, in_dim=dims.audio_dim, out_dim=h)
    if dims.visual_dim == RESNET_VISUAL_DIM:
        visual = _block(
            FramePooledProjection, in_dim=dims.visual_dim, out_dim=h, frames_per_segment=8
        )
    else:
        visual = _block(LinearProjection, in_dim=dims.visual_dim, out_dim=h)
    return _block(
        InputProjection,
        feature_set="valor" if clap else "han",
        audio=audio,
        visual=visual,
        motion=_block(MotionFusion, motion_dim=dims.motion_dim, dim=h),
    )


def official_config(dims: Dims, num_heads: int | None = None) -> dict[str, Any]:
    """The model config (plain dict, ``_target_``) of the original code's network with
    these sizes, in this project's blocks: what ``model=<arch>`` composes at the
    released sizes (``tests/test_convert.py`` holds the two equal), written out here so
    that the models never compose the app config. ``num_heads`` is not stored in the
    weights: MM-CSE and VALOR use 8, HAN 1 (the defaults)."""
    heads = num_heads or DEFAULT_HEADS[dims.arch]
    projection = _projection_config(dims)
    common = {
        "name": dims.arch,
        "feature_set": projection["feature_set"],
        "num_classes": dims.num_classes,
        "hidden_dim": dims.hidden_dim,
        "num_layers": dims.num_layers,
        "projection": projection,
        "pooling": _block(MMILPooling),
    }
    if dims.arch in ("han", "valor"):
        pre_norm = dims.norm_where == "pre_norm"
        layer = PreNormHybridAttentionLayer if pre_norm else HybridAttentionLayer
        holistic = {
            "enhancement": _block(
                layer,
                _partial_=True,
                dim=dims.hidden_dim,
                num_heads=heads,
                ffn_dim=dims.ffn_dim,
                dropout=ORIGINAL_DROPOUT,
            ),
            "heads": _block(SharedHeads, dim=dims.hidden_dim, num_classes=dims.num_classes),
        }
        if dims.arch == "valor":  # audio, then visual from the updated audio
            final = dims.hidden_dim if pre_norm else None
            holistic["stack"] = _block(AlternatingStack, _partial_=True, final_norm_dim=final)
        return _block(HolisticParsingNetwork, **common, **holistic)
    if dims.num_branches != dims.num_classes + 1:
        raise ConversionError(
            f"{dims.num_branches} a_unmix branches for {dims.num_classes} classes: "
            "the released MM-CSE has one background branch more than classes"
        )
    c = dims.class_dim
    return _block(
        ClassWiseParsingNetwork,
        **common,
        class_dim=c,
        ffn_dim=dims.ffn_dim,
        dropout=ORIGINAL_DROPOUT,
        decoupling=_block(
            ClassAwareDecoupling,
            hidden_dim=dims.hidden_dim,
            class_dim=c,
            num_classes=dims.num_classes,
            background=True,
            audio_branch_layers=1,
            visual_branch_layers=2,
            dropout=ORIGINAL_DROPOUT,
        ),
        secm=_block(
            SECM,
            _partial_=True,
            dim=c,
            num_heads=heads,
            dropout=ORIGINAL_DROPOUT,
            intra=True,
            cross=True,
        ),  # fmt: skip
        lgsf=_block(LGSF, _partial_=True, dim=c, intra=True, cross=True),
        heads=_block(ClassSpecificHeads, dim=c, num_classes=dims.num_classes),
    )


# ------------------------------------------------------------------------- converting


def _check_keys(state: Mapping[str, torch.Tensor], entries: Sequence[Entry], dims: Dims) -> None:
    arch = dims.arch
    known = {e.official for e in entries}
    unused = unused_prefixes(dims)
    unexpected = [k for k in state if k not in known and not k.startswith(unused)]
    missing = [e.official for e in entries if e.ours is not None and e.official not in state]
    if unexpected or missing:
        parts = []
        if unexpected:
            parts.append(
                f"unexpected keys {unexpected[:20]}" + (" ..." if len(unexpected) > 20 else "")
            )
        if missing:
            parts.append(f"missing keys {missing[:20]}" + (" ..." if len(missing) > 20 else ""))
        raise ConversionError(f"not a released {arch} state dict: " + "; ".join(parts))


def from_official_state(
    state: Mapping[str, torch.Tensor], network: nn.Module, dims: Dims
) -> OrderedDict[str, torch.Tensor]:
    """Our state dict for ``network`` holding the original weights ``state``."""
    entries = official_entries(dims)
    _check_keys(state, entries, dims)
    ours = OrderedDict((k, v.detach().clone()) for k, v in network.state_dict().items())
    slots: dict[str, int] = {}
    for e in entries:
        if e.ours is None:
            continue
        if e.ours not in ours:
            raise ConversionError(f"internal: our network has no {e.ours!r} (for {e.official!r})")
        value = state[e.official]
        if tuple(value.shape) != e.shape:
            raise ConversionError(
                f"{e.official!r} has shape {tuple(value.shape)}, expected {e.shape} from the "
                "other weights of the checkpoint"
            )
        target = ours[e.ours]
        if e.index:
            target[e.index] = value.reshape(target[e.index].shape)
        else:
            ours[e.ours] = value.detach().clone().to(target.dtype)
        slots[e.ours] = slots.get(e.ours, 0) + 1
    # every tensor of ours filled completely: a stacked (G, ...) tensor needs G slots
    unfilled = [k for k in ours if slots.get(k, 0) != _slot_count(entries, k, ours[k])]
    if unfilled:
        raise ConversionError(f"internal: no original weights for our keys {unfilled}")
    return ours


def _slot_count(entries: Sequence[Entry], key: str, tensor: torch.Tensor) -> int:
    depth = max((len(e.index) for e in entries if e.ours == key), default=0)
    return int(torch.tensor(tensor.shape[:depth]).prod()) if depth else 1


def official_model_config(
    source: str | Path | Mapping[str, Any],
    arch: str = "mmcse",
    *,
    num_heads: int | None = None,
    norm_where: str = "post_norm",
) -> dict[str, Any]:
    """The model config of a released checkpoint's network (:func:`official_config` for
    the sizes its weights show)."""
    dims = Dims.from_official(read_state_dict(source), arch, norm_where)
    return official_config(dims, num_heads)


def convert_checkpoint(
    source: str | Path | Mapping[str, Any],
    arch: str,
    num_heads: int | None = None,
    norm_where: str = "post_norm",
) -> tuple[nn.Module, dict[str, Any]]:
    """The converted network (eval mode) and its model config (``norm_where``: VALOR's
    ``post_norm`` (VALOR++) or ``pre_norm``, which the weights do not record)."""
    state = read_state_dict(source)
    dims = Dims.from_official(state, arch, norm_where)
    config = official_config(dims, num_heads)
    network = build_network(config)
    network.load_state_dict(from_official_state(state, network, dims))
    return network.eval(), config


def load_official(
    source: str | Path | Mapping[str, Any],
    arch: str = "mmcse",
    *,
    num_heads: int | None = None,
    norm_where: str = "post_norm",
) -> nn.Module:
    """Our network holding a released checkpoint's weights, in eval mode (see the module
    docstring).

    ``source``: a path or a (possibly wrapped) state dict. Raises :class:`ConversionError`
    naming the keys when the checkpoint does not match ``arch``.
    """
    return convert_checkpoint(source, arch, num_heads, norm_where)[0]


def to_official(network: nn.Module, arch: str = "mmcse") -> OrderedDict[str, torch.Tensor]:
    """The original code's state dict for our network (keys in the original order).

    Used weights map back exactly (official -> ours -> official is bit-identical); the
    original's unused modules are written with a fresh initialisation (LayerNorm weight
    1, others 0) so its class loads the result with ``strict=True``.
    """
    dims = Dims.from_network(network, arch)
    ours = network.state_dict()
    entries = official_entries(dims)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for e in entries:
        if e.ours is None:
            out[e.official] = torch.full(e.shape, e.fill)
        elif e.index:
            out[e.official] = ours[e.ours][e.index].detach().clone().reshape(e.shape)
        else:
            out[e.official] = ours[e.ours].detach().clone()
    expected = {e.ours for e in entries if e.ours is not None}
    extra = [k for k in ours if k not in expected]
    if extra:
        raise ConversionError(
            f"the network has weights with no counterpart in the original {arch}: {extra[:10]}"
        )
    return out


# -------------------------------------------------------------------------- file format


def save_network_file(
    path: str | Path, network: nn.Module, model_config: Mapping[str, Any], arch: str
) -> None:
    """Write ``{"format": "avvp-lit-network", "arch", "model_config", "state_dict"}``."""
    payload = {
        "format": NETWORK_FILE_FORMAT,
        "arch": arch,
        "model_config": dict(model_config),
        "state_dict": network.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
