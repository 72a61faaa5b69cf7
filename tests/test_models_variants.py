"""Every block choice composes through Hydra and trains: shapes, maps, gradients."""

from __future__ import annotations

import hydra
import pytest
import torch

from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.models import ClassWiseParsingNetwork, HolisticParsingNetwork, ParsingOutput
from avvp_lit.models.fused import use_fused
from tests.helpers.training import compose_raw

B, T, K = 2, 10, 25

INPUTS = {
    name: {key: (B, *shape) for key, shape in spec.input_shapes.items()}
    for name, spec in FEATURE_SETS.items()
}


def compose_cfg(*overrides: str):
    return compose_raw(overrides)


def batch_for(feature_set: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.randn(*shape, generator=g) for k, shape in INPUTS[feature_set].items()}
    batch["label"] = (torch.rand(B, K, generator=g) < 0.3).float()
    batch["pl_audio"] = (torch.rand(B, T, K, generator=g) < 0.2).float()
    batch["pl_visual"] = (torch.rand(B, T, K, generator=g) < 0.2).float()
    batch["index"] = torch.arange(B)
    return batch


ALL_MAPS = {"aa", "av", "vv", "va"}
# (overrides, loss terms removed, attention maps expected)
VARIANTS = [
    ([], [], ALL_MAPS),
    (["model/decoupling=cafd_no_background"], ["orthogonality"], ALL_MAPS),
    (["model/decoupling=shared"], ["reconstruction", "orthogonality"], ALL_MAPS),
    (["model/secm=none"], ["cooccurrence"], set()),
    (["model/secm=intra_only", "loss.terms.cooccurrence.maps=[aa,vv]"], [], {"aa", "vv"}),
    (["model/secm=cross_only", "loss.terms.cooccurrence.maps=[av,va]"], [], {"av", "va"}),
    (["model/lgsf=none"], [], ALL_MAPS),
    (["model/lgsf=intra_only", "model/secm=none"], ["cooccurrence"], set()),
    (["model/lgsf=cross_only", "model.num_layers=2"], [], ALL_MAPS),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def check_common(out: ParsingOutput) -> None:
    for name in ("global_prob", "a_prob", "v_prob"):
        assert getattr(out, name).shape == (B, K)
        assert ((getattr(out, name) >= 0) & (getattr(out, name) <= 1 + 1e-6)).all()
    assert out.frame_prob.shape == (B, T, 2, K)
    assert out.frame_logits.shape == (B, T, 2, K)
    torch.testing.assert_close(torch.sigmoid(out.frame_logits), out.frame_prob)


@pytest.mark.parametrize("feature_set", ["han", "valor"])
@pytest.mark.parametrize(("overrides", "dropped", "maps"), VARIANTS)
def test_mmcse_variant_forward_backward(feature_set, overrides, dropped, maps):
    cfg = compose_cfg(
        "+model=mmcse",
        "+loss=mmcse",
        f"model/projection={feature_set}",
        *overrides,
        *(f"~loss.terms.{name}" for name in dropped),
    )
    assert cfg.model.feature_set == feature_set
    torch.manual_seed(0)
    net = hydra.utils.instantiate(cfg.model)
    loss = hydra.utils.instantiate(cfg.loss)
    assert isinstance(net, ClassWiseParsingNetwork)
    batch = batch_for(feature_set)
    out = net(batch["audio"], batch["visual"], batch["visual_st"])
    check_common(out)
    assert set(out.attn_maps) == maps
    for m in maps:
        assert out.attn_maps[m].shape == (B, T, K, K)
    assert out.holistic_a.shape == out.holistic_v.shape == (B, T, 256)
    terms = loss(out, batch)
    assert set(terms) == set(cfg.loss.terms) | {"total"}
    terms["total"].backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # the first projection receives gradient through every block
    assert net.projection.audio.fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("feature_set", ["han", "valor"])
def test_han_forward_backward(feature_set):
    cfg = compose_cfg("+model=han", "+loss=han", f"model/projection={feature_set}")
    net = hydra.utils.instantiate(cfg.model)
    assert isinstance(net, HolisticParsingNetwork)
    batch = batch_for(feature_set)
    out = net(batch["audio"], batch["visual"], batch["visual_st"])
    check_common(out)
    assert out.attn_maps is None
    terms = hydra.utils.instantiate(cfg.loss)(out, batch)
    assert set(terms) == {"video_bce", "modality_bce", "total"}
    terms["total"].backward()
    assert all(p.grad is not None for p in net.parameters())


def test_mmcse_default_config_is_the_published_architecture():
    cfg = compose_cfg("+model=mmcse")
    assert cfg.model.projection.feature_set == "valor"
    assert (cfg.model.hidden_dim, cfg.model.class_dim, cfg.model.num_layers) == (256, 128, 4)
    assert cfg.model.secm.num_heads == 8
    net = hydra.utils.instantiate(cfg.model)
    branches = net.decoupling.audio.branches.first.weight
    assert branches.shape == (26, 128, 256)  # 25 classes + background, one stacked tensor
    assert net.heads.weight.shape == (3, 25, 128)
    assert len(net.enhancement.layers) == 4


def test_mixed_precision_autocast_runs_the_fused_kernels_in_float32():
    """``fused=true`` under bf16: the kernels' products are written for float32, so
    ``custom_fwd`` runs them in float32 (and their backward passes too)."""
    cfg = compose_cfg("+model=mmcse", "+loss=mmcse", "model/projection=han", "model.num_layers=1")
    net = use_fused(hydra.utils.instantiate(cfg.model), True)
    layer_dtype = []
    net.enhancement.layers[0].register_forward_hook(lambda m, a, out: layer_dtype.append(out[0]))
    batch = batch_for("han")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(batch["audio"], batch["visual"], batch["visual_st"])
        terms = hydra.utils.instantiate(cfg.loss)(out, batch)
    assert layer_dtype[0].dtype == torch.float32
    assert out.holistic_a.dtype == torch.bfloat16  # the plain projection before it: bf16
    terms["total"].backward()
    assert torch.isfinite(net.heads.weight.grad).all()
    assert net.enhancement.layers[0].linear1.weight.grad.dtype == torch.float32


def test_eval_mode_is_deterministic_and_train_mode_uses_dropout():
    cfg = compose_cfg("+model=mmcse", "model/projection=han")
    net = hydra.utils.instantiate(cfg.model)
    batch = batch_for("han")
    args = (batch["audio"], batch["visual"], batch["visual_st"])
    net.eval()
    with torch.no_grad():
        a, b = net(*args), net(*args)
    torch.testing.assert_close(a.frame_logits, b.frame_logits, rtol=0, atol=0)
    net.train()
    with torch.no_grad():
        c = net(*args)
    assert not torch.allclose(a.frame_logits, c.frame_logits)


def test_published_recipe_drops_attention_weights_and_supervises_the_dropped_maps():
    """The released code: nn.MultiheadAttention(dropout=0.1) in both SECM parts of every
    FGSE layer, and the maps it returns (which the co-occurrence loss reads) are taken
    after that dropout."""
    cfg = compose_raw(["experiment=mmcse_llp", "data.root=unused"], "train")
    net = hydra.utils.instantiate(cfg.model)
    attention = [m for m in net.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    assert len(attention) == 2 * cfg.model.num_layers
    assert all(m.dropout == 0.1 for m in attention)
    batch = batch_for("valor")
    args = (batch["audio"], batch["visual"], batch["visual_st"])
    with torch.no_grad():
        rows = net.train()(*args).attn_maps["aa"].sum(-1)  # (B, T, K): 1 without dropout
        assert (rows - 1).abs().max() > 0.01
        rows = net.eval()(*args).attn_maps["aa"].sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))
