"""The fused CPU path against the plain formulas and blocks (values and gradients)."""

from __future__ import annotations

import copy
import math

import hydra
import pytest
import torch
import torch.nn.functional as F

from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.models import fused
from avvp_lit.models.fused import (
    Dropout,
    class_token_attention,
    gated_global,
    is_fused,
    keep_scale,
    norm_feed_forward,
    use_fused,
)
from tests.helpers.training import compose_raw

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_attention(z, in_proj, out_proj, num_heads, cross, masks=None):
    """z + out_proj(nn.MultiheadAttention's math, op by op): z (M, N, L, d)."""
    m, n, length, d = z.shape
    hd = d // num_heads
    q, k, v = in_proj(z).split(d, dim=-1)
    if cross:
        k, v = k.flip(0), v.flip(0)

    def heads(x):
        return x.reshape(m, n, length, num_heads, hd).transpose(2, 3)  # (M, N, h, L, hd)

    attn = torch.softmax(heads(q) / math.sqrt(hd) @ heads(k).transpose(-1, -2), dim=-1)
    if masks is not None:  # (M, N·h, L, L) dropout multipliers
        attn = attn * masks.view(m, n, num_heads, length, length)
    out = (attn @ heads(v)).transpose(2, 3).reshape(m, n, length, d)
    return z + out_proj(out), attn.mean(2)


def attention_args(d=8, seed=0):
    torch.manual_seed(seed)
    z = torch.randn(2, 3, 5, d, dtype=torch.float64, requires_grad=True)
    in_proj = torch.nn.Linear(d, 3 * d).double()
    out_proj = torch.nn.Linear(d, d).double()
    return z, in_proj, out_proj


def reference_gate(s, local_proj, p_global, cross):
    local = F.relu(local_proj(s))
    glob = F.relu(p_global).mean(dim=2, keepdim=True)
    if cross:
        glob = glob.flip(0)
    gate = torch.sigmoid(F.cosine_similarity(local, glob, dim=-1)).unsqueeze(-1)
    return gate, glob


@pytest.mark.parametrize("cross", [False, True])
def test_attention_matches_reference_values_and_gradients(cross):
    z, in_proj, out_proj = attention_args()
    params = (in_proj.weight, in_proj.bias, out_proj.weight, out_proj.bias)
    out, maps = class_token_attention(z, *params, num_heads=2, cross=cross, need_weights=True)
    ref_out, ref_maps = reference_attention(z, in_proj, out_proj, 2, cross)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(maps, ref_maps)
    g_out, g_maps = torch.randn_like(out), torch.randn_like(maps)
    inputs = (z, *params)
    grads = torch.autograd.grad((out * g_out).sum() + (maps * g_maps).sum(), inputs)
    refs = torch.autograd.grad((ref_out * g_out).sum() + (ref_maps * g_maps).sum(), inputs)
    for a, r in zip(grads, refs, strict=True):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("need_weights", [False, True])
def test_attention_gradcheck(need_weights):
    z, in_proj, out_proj = attention_args(d=4, seed=1)
    args = (z, in_proj.weight, in_proj.bias, out_proj.weight, out_proj.bias)

    def fn(*a):
        out, maps = class_token_attention(*a, num_heads=2, cross=True, need_weights=need_weights)
        return (out, maps) if need_weights else out

    assert torch.autograd.gradcheck(fn, args)


def test_attention_dropout_regenerates_the_same_mask():
    z, in_proj, out_proj = attention_args(seed=2)
    params = (in_proj.weight, in_proj.bias, out_proj.weight, out_proj.bias)
    torch.manual_seed(10)
    out, maps = class_token_attention(
        z, *params, num_heads=2, cross=True, need_weights=True, dropout=0.5
    )
    torch.manual_seed(10)  # the same draws, in the same order: one mask per modality
    masks = torch.stack([keep_scale((6, 5, 5), 0.5, like=z)[0] for _ in range(2)])
    ref_out, ref_maps = reference_attention(z, in_proj, out_proj, 2, True, masks)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(maps, ref_maps)  # post-dropout, as nn.MultiheadAttention
    assert not torch.allclose(maps.sum(-1), torch.ones_like(maps.sum(-1)))
    grads = torch.autograd.grad(out.square().sum() + maps.sum(), (z, *params))
    refs = torch.autograd.grad(ref_out.square().sum() + ref_maps.sum(), (z, *params))
    for a, r in zip(grads, refs, strict=True):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("cross", [False, True])
def test_gate_matches_reference_values_and_gradients(cross):
    torch.manual_seed(3)
    shape = (2, 3, 4, 5, 6)
    s = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    proj = torch.nn.Linear(6, 6).double()
    p_global = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    z = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():  # a token whose local feature is all zero (relu of negatives)
        proj.bias.fill_(-0.5)
        s[0, 0, 0, 0] = 0.0
    gate, glob = gated_global(s, proj.weight, proj.bias, p_global, cross=cross)
    assert gate[0, 0, 0, 0].item() == 0.5  # cos = 0 for a zero local feature
    ref_gate, ref_glob = reference_gate(s, proj, p_global, cross)
    torch.testing.assert_close(gate, ref_gate)
    torch.testing.assert_close(glob, ref_glob)
    g = torch.randn(shape, dtype=torch.float64)
    inputs = (s, proj.weight, proj.bias, p_global)
    grads = torch.autograd.grad(((z + gate * glob) * g).sum(), inputs)
    refs = torch.autograd.grad(((z + ref_gate * ref_glob) * g).sum(), inputs)
    for a, b in zip(grads, refs, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cross", [False, True])
def test_gate_gradcheck(cross):
    torch.manual_seed(4)
    shape = (2, 2, 3, 2, 4)
    s, p_global = (torch.randn(shape, dtype=torch.float64, requires_grad=True) for _ in "ab")
    w = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    args = (s, w, b, p_global)
    assert torch.autograd.gradcheck(lambda *a: gated_global(*a, cross=cross), args)
    assert torch.autograd.gradcheck(lambda *a: gated_global(*a, cross=cross)[0], args)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("chunk_rows", [None, 5])
def test_norm_feed_forward_matches_modules(dropout, chunk_rows, monkeypatch):
    if chunk_rows:  # several row chunks (12 rows -> 5, 5, 2), one mask each
        monkeypatch.setattr(fused, "CHUNK_ELEMENTS", chunk_rows * 10)
    torch.manual_seed(5)
    norm = torch.nn.LayerNorm(6).double()
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    lin1, lin2 = torch.nn.Linear(6, 10).double(), torch.nn.Linear(10, 6).double()
    params = (*norm.parameters(), *lin1.parameters(), *lin2.parameters())
    x = torch.randn(3, 4, 6, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(6)
    out = norm_feed_forward(x, norm, lin1, lin2, dropout=dropout)
    grads = torch.autograd.grad(out.square().sum(), (x, *params))
    after = torch.rand(1)  # the generator moved past the mask
    torch.manual_seed(6)  # the same dropout masks: the same draws from the same seeds
    hidden = F.relu(lin1(norm(x))).view(12, 10)
    if dropout:
        sizes = [12] if not chunk_rows else [5, 5, 2]
        masks = [keep_scale((r, 10), 1.0 - dropout, like=x)[0] for r in sizes]
        hidden = hidden * torch.cat(masks)
    assert torch.equal(torch.rand(1), after)
    ref = lin2(hidden).view(3, 4, 6)
    refs = torch.autograd.grad(ref.square().sum(), (x, *params))
    torch.testing.assert_close(out, ref)
    for a, b in zip(grads, refs, strict=True):
        torch.testing.assert_close(a, b)


def test_keep_scale_replays_from_seeds_whatever_the_thread_count():
    like = torch.empty(0)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        mask, seeds = keep_scale((600, 1000), 0.9, like=like)
        torch.set_num_threads(1)
        again, _ = keep_scale((600, 1000), 0.9, like=like, seeds=seeds)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(mask, again)
    other, other_seeds = keep_scale((600, 1000), 0.9, like=like)
    assert not torch.equal(seeds, other_seeds) and not torch.equal(mask, other)


def test_dropout_masks_differ_between_calls_and_keep_the_rate():
    x = torch.ones(200_000, dtype=torch.float64)
    drop = Dropout(0.1)
    a, b = drop(x), drop(x)
    assert not torch.equal(a, b)
    assert (a == 0).double().mean().item() == pytest.approx(0.1, abs=0.005)
    assert a.unique().tolist() == [0.0, pytest.approx(1 / 0.9)]
    assert torch.equal(drop.eval()(x), x)


def test_norm_feed_forward_gradcheck():
    torch.manual_seed(7)
    norm = torch.nn.LayerNorm(3).double()
    lin1, lin2 = torch.nn.Linear(3, 5).double(), torch.nn.Linear(5, 3).double()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: norm_feed_forward(t, norm, lin1, lin2, dropout=0.0), (x,)
    )


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model/secm=none"],
        ["model/secm=cross_only"],
        ["model/lgsf=none"],
        ["model/lgsf=intra_only", "model/secm=intra_only"],
    ],
    ids=lambda o: " ".join(o) or "default",
)
def test_fused_network_matches_the_plain_one_in_values_and_gradients(overrides):
    """The same weights, dropout off, float64: every output and every gradient agrees
    to 1e-9 (relative to the tensor's scale; float32 rounding alone moves the deepest
    gradients by ~5e-5 of theirs)."""
    cfg = compose_raw(["data.root=unused", "model.num_layers=2", *overrides], "train")
    torch.manual_seed(0)
    plain = hydra.utils.instantiate(cfg.model).double().train()
    for module in plain.modules():  # the two paths draw different dropout masks
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(module, torch.nn.MultiheadAttention):
            module.dropout = 0.0
    fast = use_fused(copy.deepcopy(plain), True)
    assert is_fused(fast) and not is_fused(plain)
    assert list(fast.state_dict()) == list(plain.state_dict())
    g = torch.Generator().manual_seed(1)
    shapes = [(2, *shape) for shape in FEATURE_SETS["valor"].input_shapes.values()]
    inputs = [torch.randn(shape, generator=g, dtype=torch.float64) for shape in shapes]
    outputs = [net(*inputs) for net in (plain, fast)]
    for name in ("frame_logits", "global_prob", "a_prob", "v_prob"):
        torch.testing.assert_close(
            getattr(outputs[1], name), getattr(outputs[0], name), rtol=1e-9, atol=1e-9
        )
    assert outputs[0].attn_maps.keys() == outputs[1].attn_maps.keys()
    for key in outputs[0].attn_maps:
        torch.testing.assert_close(
            outputs[1].attn_maps[key], outputs[0].attn_maps[key], rtol=1e-9, atol=1e-9
        )
    probe = torch.randn(outputs[0].frame_logits.shape, generator=g, dtype=torch.float64)
    for out in outputs:
        maps = sum(m.square().sum() for m in out.attn_maps.values())
        ((out.frame_logits * probe).sum() + maps).backward()
    checked = 0
    for (name, a), b in zip(plain.named_parameters(), fast.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is None:  # the reconstruction head: not in this probe
            continue
        checked += 1
        scale = a.grad.abs().max().item()
        assert (b.grad - a.grad).abs().max().item() <= 1e-9 * max(scale, 1e-3), name
    assert checked >= len(list(plain.enhancement.parameters()))


def test_use_fused_switches_back_and_forth():
    cfg = compose_raw(["data.root=unused", "model.num_layers=1"], "train")
    network = hydra.utils.instantiate(cfg.model)
    plain_types = [type(m) for m in network.modules()]
    use_fused(network, True)
    layer = network.enhancement.layers[0]
    assert isinstance(layer, fused.FusedFGSELayer)
    assert isinstance(layer.secm.cross, fused.FusedCrossModalAttention)
    assert isinstance(layer.lgsf.intra, fused.FusedGatedGlobalIntra)
    use_fused(network, False)
    assert [type(m) for m in network.modules()] == plain_types
