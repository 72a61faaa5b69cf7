"""Our MM-CSE against a plain op-by-op implementation of docs/avvp.md §5, values AND gradients.

The golden files check the forward pass in float32; this checks, in float64 on a small
network, that the hand-written backward passes (kernels, stacked branches, factored
LGSF) give the gradients of the original formulation for every weight and input.
The reference reads the weights under the original code's key names (``to_official``).
"""

from __future__ import annotations

import copy
import math

import hydra
import pytest
import torch
import torch.nn.functional as F

from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.losses import Orthogonality, Reconstruction
from avvp_lit.models.convert import UNUSED_PREFIXES, to_official
from tests.helpers.training import compose_raw

B, K, HEADS = 2, 25, 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_forward(sd, audio, visual, visual_st, num_layers, nh):
    """The original MM-CSE forward (eval mode), written from docs/avvp.md §5 with its keys."""

    def lin(x, p):
        return F.linear(x, sd[p + ".weight"], sd[p + ".bias"])

    b = audio.shape[0]
    x_a = lin(audio, "fc_a")
    vid = lin(visual, "fc_v")
    vid = vid.view(b, 10, vid.shape[1] // 10, -1).mean(2)
    x_v = lin(torch.cat([vid, lin(visual_st, "fc_st")], -1), "fc_fusion")

    def cafd(x, mod):
        if mod == "a":
            branches = [F.relu(lin(F.relu(x), f"a_unmix.{k}.1")) for k in range(K + 1)]
        else:
            branches = [
                F.relu(lin(F.relu(lin(F.relu(x), f"v_unmix.{k}.1")), f"v_unmix.{k}.4"))
                for k in range(K + 1)
            ]
        feats = torch.stack(branches, 2)  # (B, T, 26, d)
        alpha = torch.sigmoid(
            lin(F.relu(lin(F.relu(x), f"alpha_{mod}.model.1")), f"alpha_{mod}.model.4")
        ).unsqueeze(-1)
        ev, bg = feats[:, :, :K], feats[:, :, K:].expand_as(feats[:, :, :K])
        fused = F.relu(lin(torch.cat([alpha * ev, (1 - alpha) * bg], -1), f"reduce_{mod}.0"))
        flat = feats.flatten(2)
        if mod == "a":
            rec = F.relu(lin(F.relu(lin(flat, "a_recon.0")), "a_recon.2"))
        else:
            rec = F.relu(lin(F.relu(lin(F.relu(flat), "v_recon.model.1")), "v_recon.model.3"))
        return feats, fused, rec

    def mha(p, q, k, v):
        w, bias = sd[p + ".in_proj_weight"], sd[p + ".in_proj_bias"]
        d = q.shape[-1]
        qq, kk, vv = (
            F.linear(t, w[i * d : (i + 1) * d], bias[i * d : (i + 1) * d])
            for i, t in enumerate((q, k, v))
        )
        n, length, _ = qq.shape

        def split(t):
            return t.view(n, length, nh, d // nh).transpose(1, 2)

        att = torch.softmax(split(qq) @ split(kk).transpose(-1, -2) / math.sqrt(d // nh), -1)
        out = (att @ split(vv)).transpose(1, 2).reshape(n, length, d)
        return lin(out, p + ".out_proj"), att.mean(1)

    def gate(h, g):
        return torch.sigmoid(F.cosine_similarity(h, g, dim=-1)).unsqueeze(-1)

    def layer(i, q, o):
        p = f"av_enhance.layers.{i}."
        bq, t, k, d = q.shape
        q0, oo = q.reshape(bq * t, k, d), o.reshape(bq * t, k, d)
        a1, m1 = mha(p + "SECM_1.attn", q0, q0, q0)
        s1 = (q0 + a1).view(bq, t, k, d)
        g = F.relu(lin(s1, p + "LGSF_1.glob2")).mean(1, keepdim=True)
        i1 = q + gate(F.relu(lin(s1, p + "LGSF_1.glob1")), g) * g
        a2, m2 = mha(p + "SECM_2.attn", q0, oo, oo)
        s2 = (q0 + a2).view(bq, t, k, d)
        g = F.relu(lin(o, p + "LGSF_2.glob")).mean(1, keepdim=True)
        i2 = q + gate(F.relu(lin(s2, p + "LGSF_2.glob")), g) * g
        y = F.layer_norm(
            lin(i1, p + "fc1") + lin(i2, p + "fc2"),
            (d,),
            sd[p + "norm1.weight"],
            sd[p + "norm1.bias"],
        )
        return (
            lin(F.relu(lin(y, p + "linear1")), p + "linear2"),
            m1.view(bq, t, k, k),
            m2.view(bq, t, k, k),
        )

    def heads(x, name):
        w = torch.cat([sd[f"{name}.fc.{k}.weight"] for k in range(K)], 0)
        bias = torch.cat([sd[f"{name}.fc.{k}.bias"] for k in range(K)])
        return (x * w).sum(-1) + bias

    fa, a, ra = cafd(x_a, "a")
    fv, v, rv = cafd(x_v, "v")
    maps = {}
    for i in range(num_layers):
        (a, maps["aa"], maps["av"]), (v, maps["vv"], maps["va"]) = layer(i, a, v), layer(i, v, a)
    x = torch.stack([a, v], 2)  # (B, T, 2, K, d)
    logits = heads(x, "fc_prob")
    frame_prob = torch.sigmoid(logits)
    temporal = torch.softmax(heads(x, "fc_frame_att"), 1) * frame_prob
    av_att = torch.softmax(heads(x, "fc_av_att"), 2)
    return {
        "frame_logits": logits,
        "global_prob": (temporal * av_att).sum(2).sum(1),
        "a_prob": temporal[:, :, 0].sum(1),
        "v_prob": temporal[:, :, 1].sum(1),
        "maps": maps,
        "rec_a": F.mse_loss(ra, x_a),
        "rec_v": F.mse_loss(rv, x_v),
        "ort_a": F.cosine_similarity(
            fa[:, :, :K], fa[:, :, K:].expand_as(fa[:, :, :K]), dim=-1
        ).mean(),
        "ort_v": F.cosine_similarity(fv[:, :, :K].mean(2), fv[:, :, K], dim=-1).mean(),
    }


def scalar(parts, weights):
    """A random linear functional of every output (so every path gets gradient)."""
    return sum((p * w).sum() for p, w in zip(parts, weights, strict=True))


def test_small_mmcse_matches_reference_values_and_gradients():
    cfg = compose_raw(
        [
            "+model=mmcse",
            "model/projection=han",
            "model.hidden_dim=16",
            "model.class_dim=8",
            "model.ffn_dim=12",
            "model.num_layers=2",
            f"model.secm.num_heads={HEADS}",
        ]
    )
    torch.manual_seed(0)
    net = hydra.utils.instantiate(cfg.model).double().eval()
    official = {k: v.clone().requires_grad_(True) for k, v in to_official(net, "mmcse").items()}
    g = torch.Generator().manual_seed(1)
    shapes = [(B, *shape) for shape in FEATURE_SETS["han"].input_shapes.values()]
    inputs = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes]
    ref_inputs = [x.detach().clone().requires_grad_(True) for x in inputs]

    out = net(*inputs)
    ref = reference_forward(official, *ref_inputs, num_layers=2, nh=HEADS)
    ours = [
        out.frame_logits,
        out.global_prob,
        out.a_prob,
        out.v_prob,
        *(out.attn_maps[m] for m in ("aa", "av", "vv", "va")),
        Reconstruction(modalities=["audio"])(out, {}),
        Reconstruction(modalities=["visual"])(out, {}),
        Orthogonality(visual=None)(out, {}),
        Orthogonality(audio=None)(out, {}),
    ]
    names = ["frame_logits", "global_prob", "a_prob", "v_prob"]
    theirs = [ref[n] for n in names] + [ref["maps"][m] for m in ("aa", "av", "vv", "va")]
    theirs += [ref["rec_a"], ref["rec_v"], ref["ort_a"], ref["ort_v"]]
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)

    weights = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in ours]
    scalar(ours, weights).backward()
    scalar(theirs, weights).backward()
    for x, y in zip(inputs, ref_inputs, strict=True):  # the whole chain, in reverse
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-7, atol=1e-10)
    grad_net = copy.deepcopy(net)  # our parameter gradients under the original key names
    for p_grad, p in zip(grad_net.parameters(), net.parameters(), strict=True):
        p_grad.data = p.grad.clone()
    ours_by_key = to_official(grad_net, "mmcse")
    checked = 0
    for key, param in official.items():
        if key.startswith(UNUSED_PREFIXES["mmcse"]):
            assert param.grad is None  # the original never uses them either
            continue
        torch.testing.assert_close(ours_by_key[key], param.grad, rtol=1e-7, atol=1e-10, msg=key)
        checked += 1
    assert checked == len(official) - 4
