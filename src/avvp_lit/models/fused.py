"""The fused CPU path of MM-CSE's FGSE layers: hand-written autograd functions.

The plain blocks (``avvp_lit.models.enhancement``) are the reference: they read as the
paper, compile and run in bf16, and every GPU run uses them. This module is an
optimisation for one case, float32 training on a CPU without ``torch.compile``, where
it is measured faster and leaner (README, "Benchmarks"); the run selects it there
(``fused=auto``, see ``avvp_lit.engine.execution``) by switching the blocks of a
built network to the fused subclasses below (:func:`use_fused`: same parameters,
state-dict keys and order).

Why it is faster on a CPU: the FGSE layers run over B·T·K·2 class tokens (32,000 at
batch 64, one (N, 128) float tensor = 16 MB), so every elementwise pass, every saved
intermediate and every large fresh buffer counts. The functions here compute the same
values with few passes, save only what their backward pass needs (recomputing cheap
intermediates instead), draw dropout masks from cheap seeded uniforms that the backward
pass regenerates, and keep buffers at or below ~25 MB, which glibc's allocator reuses.
``tests/test_models_fused.py`` checks each against the plain blocks, values and
gradients, and with ``gradcheck``.

- :func:`class_token_attention`: SECM's residual multi-head attention (intra / cross);
- :func:`gated_global`: LGSF's gate and time-averaged global feature;
- :func:`norm_feed_forward`: the FGSE layer's LayerNorm + feed-forward block;
- :func:`keep_scale` / :class:`Dropout`: dropout masks from seeded uniform draws.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from avvp_lit.models.decoupling import BranchDropout
from avvp_lit.models.enhancement import (
    LGSF,
    SECM,
    ClassTokenAttention,
    CrossModalAttention,
    FGSELayer,
    GatedGlobalCross,
    GatedGlobalIntra,
    IntraModalAttention,
    Maps,
    NoAttention,
    NoGating,
)
from avvp_lit.models.precision import float32_backward, float32_forward

MASK_STREAMS = 4  # independent generator streams per mask: fixed, so masks never depend
# on the thread count, and filled in parallel (a CPU uniform draw is single-threaded)
_pools: dict[int, ThreadPoolExecutor] = {}


def mask_seeds() -> torch.Tensor:
    """Seeds for one dropout mask, drawn from the default CPU generator (which
    ``torch.manual_seed`` / ``seed_everything`` govern)."""
    return torch.randint(0, 2**62, (MASK_STREAMS,), dtype=torch.int64)


def _fill_uniform(buffer: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """Fill ``buffer`` with U[0, 1) draws.

    On CPU, piece i of its flat view comes from NumPy's PCG64 seeded with seed i (about
    2.5 times faster than torch's Mersenne Twister ``uniform_``, same 24-bit grid in
    float32), the pieces filled in parallel (NumPy releases the GIL). Elsewhere, or for
    other dtypes, torch's generator seeded with the first seed fills it.
    """
    numpy_dtype = {torch.float32: np.float32, torch.float64: np.float64}.get(buffer.dtype)
    if buffer.device.type != "cpu" or numpy_dtype is None:
        generator = torch.Generator(device=buffer.device).manual_seed(int(seeds[0]))
        return buffer.uniform_(generator=generator)
    parts = buffer.view(-1).tensor_split(len(seeds))
    seed_list = seeds.tolist()

    def fill(i: int) -> None:
        rng = np.random.Generator(np.random.PCG64(seed_list[i]))
        rng.random(out=parts[i].numpy(), dtype=numpy_dtype)

    threads = min(torch.get_num_threads(), len(parts))
    if threads > 1 and buffer.numel() >= 1 << 18:
        pool = _pools.get(threads) or _pools.setdefault(threads, ThreadPoolExecutor(threads))
        list(pool.map(fill, range(len(parts))))
    else:
        for i in range(len(parts)):
            fill(i)
    return buffer


def keep_scale(
    shape: tuple[int, ...],
    keep: float,
    *,
    like: torch.Tensor,
    seeds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A dropout multiplier (1/keep with probability ``keep``, else 0; ``like``'s dtype and
    device) and the seeds that reproduce it.

    Drawn from uniforms u as ``u >= 1 - keep``. On CPU a uniform draw (see
    :func:`_fill_uniform`) is several times cheaper than ``bernoulli_``,
    multiplying by a float mask several times cheaper than by a bool one, and passing
    the returned ``seeds`` back regenerates the same mask, so a backward pass need not
    store it.
    """
    if seeds is None:
        seeds = mask_seeds()
    mask = _fill_uniform(torch.empty(shape, dtype=like.dtype, device=like.device), seeds)
    # floor(u + keep) = 1 exactly when u >= 1 - keep (sums below 1 are exact on u's grid):
    # probability keep, with float passes only (an in-place comparison would copy)
    return mask.add_(keep).floor_().mul_(1.0 / keep), seeds


class Dropout(BranchDropout):
    """``nn.Dropout`` with the cheaper mask of :func:`keep_scale` (same distribution)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * keep_scale(tuple(x.shape), 1.0 - self.p, like=x)[0]


def _heads_first(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(N, L, h·hd) (possibly a view) -> contiguous (N·h, L, hd)."""
    n, length, d = x.shape
    hd = d // heads
    out = x.reshape(n, length, heads, hd).permute(0, 2, 1, 3).contiguous()
    return out.view(n * heads, length, hd)


def _tokens_first(x: torch.Tensor, n: int) -> torch.Tensor:
    """(N·h, L, hd) -> contiguous (N·L, h·hd)."""
    b, length, hd = x.shape
    h = b // n
    return x.view(n, h, length, hd).permute(0, 2, 1, 3).reshape(n * length, h * hd)


class _ClassTokenAttention(torch.autograd.Function):
    """Residual multi-head attention over the L tokens of each of N groups, M modalities.

    ``s = z + out_proj(MHA(in_proj(z)))`` for z (M, N, L, d), with ``nn.MultiheadAttention``'s
    parameters (``in_proj`` rows ``[q | k | v]``); with ``cross`` the keys/values of
    modality m come from modality M-1-m. Also returns, with ``need_weights``, the
    head-averaged weights (M, N, L, L) (after dropout, as ``nn.MultiheadAttention``).

    Runs one modality at a time (every buffer <= 25 MB at batch 64, which the C allocator
    reuses instead of page-faulting fresh memory) and keeps only z and the head-major
    q, k, v for the backward pass, which recomputes the (N·h, L, L) weights and the
    attention output: two small batched products instead of ~90 MB per call.
    """

    @staticmethod
    def _attend(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(b, L, hd) each -> softmax weights (b, L, L), dropped weights, output (b, L, hd)."""
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1)
        used = attn if mask is None else attn * mask
        return attn, used, torch.bmm(used, v)

    @staticmethod
    @float32_forward
    def forward(
        ctx: Any,
        z: torch.Tensor,
        w_in: torch.Tensor,
        b_in: torch.Tensor,
        w_out: torch.Tensor,
        b_out: torch.Tensor,
        num_heads: int,
        cross: bool,
        need_weights: bool,
        dropout: float,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        m, n, length, d = z.shape
        hd = d // num_heads
        b = n * num_heads
        qkv = []  # per modality: (3, N·h, L, hd), q scaled by 1/sqrt(hd)
        for i in range(m):
            proj = torch.addmm(b_in, z[i].reshape(-1, d), w_in.t())  # (N·L, 3d)
            heads = proj.new_empty(3, n, num_heads, length, hd)
            heads.copy_(proj.view(n, length, 3, num_heads, hd).permute(2, 0, 3, 1, 4))
            heads[0].mul_(1.0 / math.sqrt(hd))
            qkv.append(heads.view(3, b, length, hd))
        s = torch.empty_like(z)
        maps = z.new_empty(m, n, length, length) if need_weights else None
        seeds = []
        for i in range(m):
            src = m - 1 - i if cross else i  # where the keys and values come from
            mask = None
            if dropout > 0.0:
                mask, mask_seeds_i = keep_scale((b, length, length), 1.0 - dropout, like=z)
                seeds.append(mask_seeds_i)
            _, used, out = _ClassTokenAttention._attend(qkv[i][0], qkv[src][1], qkv[src][2], mask)
            s_i = s[i].view(-1, d)
            torch.addmm(z[i].reshape(-1, d), _tokens_first(out, n), w_out.t(), out=s_i)
            s_i.add_(b_out)
            if maps is not None:
                torch.mean(used.view(n, num_heads, length, length), dim=1, out=maps[i])
        ctx.save_for_backward(z, w_in, w_out, *qkv)
        ctx.setup = (num_heads, cross, dropout, seeds)
        return s, maps

    @staticmethod
    @float32_backward
    @once_differentiable
    def backward(
        ctx: Any, grad_s: torch.Tensor, grad_maps: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        z, w_in, w_out, *qkv = ctx.saved_tensors
        num_heads, cross, dropout, seeds = ctx.setup
        m, n, length, d = z.shape
        hd = d // num_heads
        b = n * num_heads
        grad_s = grad_s.contiguous()
        grad_qkv = [torch.empty_like(t) for t in qkv]
        grad_w_out = torch.zeros_like(w_out)
        grad_b_out = grad_s.view(-1, d).sum(0)
        for i in range(m):
            src = m - 1 - i if cross else i
            q, k, v = qkv[i][0], qkv[src][1], qkv[src][2]
            mask = None
            if dropout > 0.0:
                mask, _ = keep_scale((b, length, length), 1.0 - dropout, like=z, seeds=seeds[i])
            attn, used, out = _ClassTokenAttention._attend(q, k, v, mask)
            g_s = grad_s[i].view(-1, d)
            grad_w_out.addmm_(g_s.t(), _tokens_first(out, n))
            g_out = _heads_first(g_s.mm(w_out).view(n, length, d), num_heads)  # (b, L, hd)
            torch.bmm(used.transpose(1, 2), g_out, out=grad_qkv[src][2])  # values
            grad_used = torch.bmm(g_out, v.transpose(1, 2))  # (b, L, L)
            if grad_maps is not None:  # maps = mean over heads
                per_head = grad_used.view(n, num_heads, length, length)
                per_head.add_(grad_maps[i].unsqueeze(1), alpha=1.0 / num_heads)
            grad_attn = grad_used if mask is None else grad_used.mul_(mask)
            grad_scores = torch._softmax_backward_data(grad_attn, attn, -1, attn.dtype)
            torch.bmm(grad_scores, k, out=grad_qkv[i][0]).mul_(1.0 / math.sqrt(hd))  # queries
            torch.bmm(grad_scores.transpose(1, 2), q, out=grad_qkv[src][1])  # keys
        grad_z = torch.empty_like(z)
        grad_w_in = torch.zeros_like(w_in)
        grad_b_in = w_in.new_zeros(w_in.shape[0])
        for i in range(m):
            heads = grad_qkv[i].view(3, n, num_heads, length, hd)
            grad_proj = heads.permute(1, 3, 0, 2, 4).reshape(n * length, 3 * d)  # token rows
            z_i = z[i].reshape(-1, d)
            grad_w_in.addmm_(grad_proj.t(), z_i)
            grad_b_in.add_(grad_proj.sum(0))
            torch.addmm(grad_s[i].view(-1, d), grad_proj, w_in, out=grad_z[i].view(-1, d))
        return grad_z, grad_w_in, grad_b_in, grad_w_out, grad_b_out, None, None, None, None


def class_token_attention(
    z: torch.Tensor,
    w_in: torch.Tensor,
    b_in: torch.Tensor,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
    *,
    num_heads: int,
    cross: bool,
    need_weights: bool = False,
    dropout: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """See :class:`_ClassTokenAttention`: z (M, N, L, d) -> s (M, N, L, d) and the maps
    (M, N, L, L) or None."""
    return _ClassTokenAttention.apply(
        z, w_in, b_in, w_out, b_out, num_heads, cross, need_weights, dropout
    )


class _GatedGlobal(torch.autograd.Function):
    """LGSF's gate and global feature.

    ``g = mean_T relu(p_global)`` (M, B, 1, K, d) and
    ``gate = sigmoid(cos(relu(s W^T + b), g))`` (M, B, T, K, 1); tensors (M, B, T, K, d),
    time on axis 2. With ``cross`` the global feature of modality m is the other
    modality's (g flipped over axis 0). The cosine is ``F.cosine_similarity``'s
    ``x·y / (max(‖x‖, eps)·max(‖y‖, eps))``. The caller forms ``z + gate·g``.
    The local projection runs inside so that its (N, d) output is recomputed in the
    backward pass from s (kept anyway) instead of being stored.
    """

    @staticmethod
    @float32_forward
    def forward(
        ctx: Any,
        s: torch.Tensor,
        w_local: torch.Tensor,
        b_local: torch.Tensor,
        p_global: torch.Tensor,
        cross: bool,
        eps: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        local = F.linear(s, w_local, b_local).relu_()  # (M, B, T, K, d)
        active = p_global > 0
        steps = p_global.shape[2]
        glob = torch.relu(p_global).sum(2, keepdim=True).div_(steps)  # (M, B, 1, K, d)
        if cross:
            glob = glob.flip(0)
        inv_local = local.norm(dim=-1).clamp_min_(eps).reciprocal_()  # (M, B, T, K)
        inv_glob = glob.norm(dim=-1).clamp_min_(eps).reciprocal_()  # (M, B, 1, K)
        cos = local.mul_(glob).sum(-1).mul_(inv_local).mul_(inv_glob)  # (M, B, T, K)
        gate = torch.sigmoid(cos)
        ctx.save_for_backward(s, w_local, b_local, active, glob, inv_local, inv_glob, cos, gate)
        ctx.cross = cross
        return gate.unsqueeze(-1), glob

    @staticmethod
    @float32_backward
    @once_differentiable
    def backward(
        ctx: Any, grad_gate: torch.Tensor | None, grad_glob: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        s, w_local, b_local, active, glob, inv_local, inv_glob, cos, gate = ctx.saved_tensors
        steps = s.shape[2]
        local = F.linear(s, w_local, b_local).relu_()  # recomputed
        if grad_gate is None:
            grad_gate = torch.zeros_like(gate).unsqueeze(-1)
        grad_cos = grad_gate.squeeze(-1) * gate * (1.0 - gate)  # (M, B, T, K)
        # d cos / d local = g·ia·ig - cos·local·ia²;  d cos / d g = local·ia·ig - cos·g·ig²
        coef_g = grad_cos * inv_local * inv_glob
        coef_l = grad_cos * cos * inv_local.square()
        # g is constant over T: its gradient sums the per-second terms
        total = (local * coef_g.unsqueeze(-1)).sum(2, keepdim=True)  # (M, B, 1, K, d)
        shrink = (grad_cos * cos).sum(2, keepdim=True) * inv_glob.square()  # (M, B, 1, K)
        total.sub_(shrink.unsqueeze(-1) * glob)
        if grad_glob is not None:
            total.add_(grad_glob)
        if ctx.cross:
            total = total.flip(0)
        grad_p_global = torch.where(active, total.div_(steps), 0.0)
        positive = local.sign()  # 1 where relu passed, 0 elsewhere (relu'(0) = 0)
        grad_local = local.mul_(coef_l.neg_().unsqueeze(-1))  # reuse the buffer
        grad_local.addcmul_(coef_g.unsqueeze(-1), glob).mul_(positive)
        flat = grad_local.reshape(-1, grad_local.shape[-1])
        grad_w = flat.t().mm(s.reshape(-1, s.shape[-1]))
        grad_b = flat.sum(0)
        grad_s = flat.mm(w_local).view_as(s)
        return grad_s, grad_w, grad_b, grad_p_global, None, None


def gated_global(
    s: torch.Tensor,
    w_local: torch.Tensor,
    b_local: torch.Tensor,
    p_global: torch.Tensor,
    *,
    cross: bool,
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """See :class:`_GatedGlobal`: s, p_global (M, B, T, K, d) -> gate (M, B, T, K, 1),
    global feature (M, B, 1, K, d)."""
    return _GatedGlobal.apply(s, w_local, b_local, p_global, cross, eps)


CHUNK_ELEMENTS = 1 << 22  # rows per chunk of the (N, ffn) hidden layer: 16 MiB in float32


def _row_chunks(rows: int, width: int) -> list[slice]:
    step = max(1, CHUNK_ELEMENTS // width)
    return [slice(i, min(i + step, rows)) for i in range(0, rows, step)]


class _NormFeedForward(torch.autograd.Function):
    """``linear2(dropout(relu(linear1(LayerNorm(x)))))`` keeping x and one bit per unit.

    The FGSE layer's output block. It saves x, the LayerNorm statistics and, per hidden
    unit, whether relu and the dropout mask both let it through (1 byte) instead of
    LayerNorm's input and output, the mask and the (N, ffn) float activation: the
    backward pass recomputes linear1 (one (N, d) x (d, ffn) product) for ~100 MB less per
    layer at batch 64, and needs no second mask draw. The hidden layer is processed in
    row chunks of 16 MiB: buffers that size are reused by the C allocator, while each
    fresh 65 MB one would be page-faulted in again. x (N, d) -> (N, d).
    """

    @staticmethod
    @float32_forward
    def forward(
        ctx: Any,
        x: torch.Tensor,
        ln_w: torch.Tensor,
        ln_b: torch.Tensor,
        eps: float,
        w1: torch.Tensor,
        b1: torch.Tensor,
        w2: torch.Tensor,
        b2: torch.Tensor,
        dropout: float,
    ) -> torch.Tensor:
        d = x.shape[-1]
        keep = 1.0 - dropout
        y, mean, rstd = torch.native_layer_norm(x, (d,), ln_w, ln_b, eps)
        out = x.new_empty(x.shape[0], w2.shape[0])
        passed = torch.empty(x.shape[0], w1.shape[0], dtype=torch.bool, device=x.device)
        for rows in _row_chunks(x.shape[0], w1.shape[0]):
            act = torch.addmm(b1, y[rows], w1.t()).relu_()  # (rows, F)
            if keep < 1.0:
                act.mul_(keep_scale(tuple(act.shape), keep, like=act)[0])
            torch.gt(act, 0.0, out=passed[rows])
            torch.addmm(b2, act, w2.t(), out=out[rows])
        ctx.save_for_backward(x, mean, rstd, passed, ln_w, ln_b, w1, b1, w2)
        ctx.eps = eps
        ctx.keep = keep
        return out

    @staticmethod
    @float32_backward
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, mean, rstd, passed, ln_w, ln_b, w1, b1, w2 = ctx.saved_tensors
        d = x.shape[-1]
        grad = grad.contiguous()
        y = torch.native_layer_norm(x, (d,), ln_w, ln_b, ctx.eps)[0]  # recomputed, bitwise
        grad_y = torch.empty_like(y)
        grad_w1, grad_b1 = torch.zeros_like(w1), torch.zeros_like(b1)
        grad_w2, grad_b2 = torch.zeros_like(w2), grad.sum(0)
        w2_scaled = w2 / ctx.keep
        for rows in _row_chunks(x.shape[0], w1.shape[0]):
            through = passed[rows].to(y.dtype)  # 1 where relu and the mask passed, else 0
            act = torch.addmm(b1, y[rows], w1.t()).mul_(through)  # relu(pre)·mask, unscaled
            g = grad[rows]
            grad_w2.addmm_(g.t(), act, alpha=1.0 / ctx.keep)
            grad_act = g.mm(w2_scaled).mul_(through)  # d act / d pre = mask/keep where relu > 0
            grad_w1.addmm_(grad_act.t(), y[rows])
            grad_b1.add_(grad_act.sum(0))
            torch.mm(grad_act, w1, out=grad_y[rows])
        grad_x, grad_ln_w, grad_ln_b = torch.ops.aten.native_layer_norm_backward(
            grad_y, x, (d,), mean, rstd, ln_w, ln_b, [True, True, True]
        )
        return grad_x, grad_ln_w, grad_ln_b, None, grad_w1, grad_b1, grad_w2, grad_b2, None


def norm_feed_forward(
    x: torch.Tensor,
    norm: torch.nn.LayerNorm,
    linear1: torch.nn.Linear,
    linear2: torch.nn.Linear,
    *,
    dropout: float,
) -> torch.Tensor:
    """See :class:`_NormFeedForward`; x (..., d) -> (..., d)."""
    flat = x.reshape(-1, x.shape[-1])
    out = _NormFeedForward.apply(
        flat,
        norm.weight,
        norm.bias,
        norm.eps,
        linear1.weight,
        linear1.bias,
        linear2.weight,
        linear2.bias,
        dropout,
    )
    return out.view(*x.shape[:-1], -1)


# ---------------------------------------------------------------- the fused blocks
# Each is a subclass of a plain block with no state of its own (same parameters, keys
# and order), so :func:`use_fused` can switch a built network between the two in place.


class _FusedClassTokenAttention(ClassTokenAttention):
    """A SECM attention part on :func:`class_token_attention` (``cross``: keys and values
    from the other modality)."""

    cross: bool

    def forward(  # type: ignore[override]
        self, z: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, Maps]:
        m, b, t, k, d = z.shape
        s, maps = class_token_attention(
            z.reshape(m, b * t, k, d),
            self.in_proj_weight,
            self.in_proj_bias,
            self.out_proj.weight,
            self.out_proj.bias,
            num_heads=self.num_heads,
            cross=self.cross,
            need_weights=need_weights,
            dropout=self.dropout if self.training else 0.0,
        )  # s = z + out_proj(attention): (2, B·T, K, d); maps (2, B·T, K, K) or None
        if maps is None:
            return s.view_as(z), {}
        maps = maps.view(m, b, t, k, k)
        return s.view_as(z), dict(zip(self.map_names, maps.unbind(0), strict=True))


class FusedIntraModalAttention(_FusedClassTokenAttention, IntraModalAttention):
    """Fused :class:`~avvp_lit.models.enhancement.IntraModalAttention`."""

    cross = False


class FusedCrossModalAttention(_FusedClassTokenAttention, CrossModalAttention):
    """Fused :class:`~avvp_lit.models.enhancement.CrossModalAttention`."""

    cross = True


class GatedUpdate:
    """An LGSF result ``i = z + gate·g`` kept factored (gate (2, B, T, K, 1), g (2, B, 1,
    K, d)): a linear map of i is ``W z + gate·(W g)``, so the layer never materialises i.
    """

    def __init__(self, gate: torch.Tensor, glob: torch.Tensor) -> None:
        self.gate = gate
        self.glob = glob

    def add_projection(self, out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``out + W (i - z)`` = out + gate·(W g); out (2, B, T, K, d').

        Out of place: ``out`` is a view of a matmul result, and an in-place update of a
        view makes autograd copy the whole gradient in the backward pass.
        """
        return torch.addcmul(out, self.gate, F.linear(self.glob, weight))


class StreamUpdate:
    """An LGSF part that is off: ``i = s`` (the SECM stream); ``W (i - z) = W (s - z)``.

    With the SECM part off too, s is z itself and the update is zero: nothing to add.
    """

    def __init__(self, stream: torch.Tensor, base: torch.Tensor) -> None:
        self.stream = stream
        self.base = base

    def add_projection(self, out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.stream is self.base:
            return out
        return out + F.linear(self.stream - self.base, weight)


class FusedGatedGlobalIntra(GatedGlobalIntra):
    """Fused :class:`~avvp_lit.models.enhancement.GatedGlobalIntra`: a :class:`GatedUpdate`."""

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> GatedUpdate:  # type: ignore[override]
        p_global = self.glob2(s)  # (2, B, T, K, d); glob1(s) runs inside the kernel
        return GatedUpdate(
            *gated_global(s, self.glob1.weight, self.glob1.bias, p_global, cross=False)
        )


class FusedGatedGlobalCross(GatedGlobalCross):
    """Fused :class:`~avvp_lit.models.enhancement.GatedGlobalCross`: a :class:`GatedUpdate`."""

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> GatedUpdate:  # type: ignore[override]
        glob = self.glob  # glob(z) of the other modality gives g: the kernel flips it
        return GatedUpdate(*gated_global(s, glob.weight, glob.bias, glob(z), cross=True))


class FusedNoGating(NoGating):
    """Fused :class:`~avvp_lit.models.enhancement.NoGating`: a :class:`StreamUpdate`."""

    def forward(self, s: torch.Tensor, z: torch.Tensor) -> StreamUpdate:  # type: ignore[override]
        return StreamUpdate(s, z)


class FusedFGSELayer(FGSELayer):
    """:class:`~avvp_lit.models.enhancement.FGSELayer` with the LGSF results kept factored
    and the LayerNorm + feed-forward block in :func:`norm_feed_forward`.

    ``fc1(i1) + fc2(i2)`` with ``i = z + (i - z)`` is ``(W1 + W2) z + W1 (i1 - z) +
    W2 (i2 - z) + b``: one (N, d) product on z, and the updates at their factored size.
    """

    def forward(self, z: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, Maps]:
        s1, intra_maps = self.secm.intra(z, need_weights)
        i1 = self.lgsf.intra(s1, z)
        s2, cross_maps = self.secm.cross(z, need_weights)
        i2 = self.lgsf.cross(s2, z)
        weight = self.fc1.weight + self.fc2.weight
        mixed = F.linear(z, weight, self.fc1.bias + self.fc2.bias)  # (2, B, T, K, d)
        mixed = i1.add_projection(mixed, self.fc1.weight)
        mixed = i2.add_projection(mixed, self.fc2.weight)
        out = norm_feed_forward(  # linear2(drop(relu(linear1(norm1(mixed)))))
            mixed,
            self.norm1,
            self.linear1,
            self.linear2,
            dropout=self.dropout.p if self.training else 0.0,
        )
        return out, {**intra_maps, **cross_maps}


FUSED_BLOCKS: dict[type[torch.nn.Module], type[torch.nn.Module]] = {
    IntraModalAttention: FusedIntraModalAttention,
    CrossModalAttention: FusedCrossModalAttention,
    GatedGlobalIntra: FusedGatedGlobalIntra,
    GatedGlobalCross: FusedGatedGlobalCross,
    NoGating: FusedNoGating,
    FGSELayer: FusedFGSELayer,
    BranchDropout: Dropout,
}
PLAIN_BLOCKS = {fused: plain for plain, fused in FUSED_BLOCKS.items()}
# what a fused FGSE layer runs unchanged: its containers and plain layers (exact types)
RUNS_IN_FUSED_LAYER: frozenset[type[torch.nn.Module]] = frozenset(
    {
        SECM,
        LGSF,
        NoAttention,
        torch.nn.Linear,
        torch.nn.modules.linear.NonDynamicallyQuantizableLinear,
        torch.nn.LayerNorm,
        torch.nn.Dropout,
    }
)


def parts_without_twin(network: torch.nn.Module) -> list[str]:
    """The blocks inside ``network``'s FGSE layers that the fused layer cannot run: any
    module there that is neither a block with a fused twin nor one of
    :data:`RUNS_IN_FUSED_LAYER`, named ``path (class)``. A new SECM or LGSF part written
    without a twin is listed, and the network then runs its plain blocks
    (``avvp_lit.engine.execution``): the fused layer reads factored LGSF results that
    only the twins produce."""
    known = set(FUSED_BLOCKS) | set(PLAIN_BLOCKS) | RUNS_IN_FUSED_LAYER
    found = []
    for name, layer in network.named_modules():
        if not isinstance(layer, FGSELayer):
            continue
        for part_name, part in layer.named_modules():
            if type(part) not in known:
                path = ".".join(p for p in (name, part_name) if p)
                found.append(f"{path} ({type(part).__module__}.{type(part).__qualname__})")
    return found


def use_fused(network: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """Switch every block of ``network`` that has a fused twin to it (``enabled``) or back
    to the plain block, in place; parameters, buffers and state-dict keys are untouched.

    A fused FGSE layer expects fused LGSF parts (it reads their factored results), so a
    network is switched whole, never block by block, and only when
    :func:`parts_without_twin` finds nothing (else ``ValueError`` naming the parts).
    """
    if enabled and (missing := parts_without_twin(network)):
        raise ValueError(f"no fused twin for {', '.join(missing)}")
    table = FUSED_BLOCKS if enabled else PLAIN_BLOCKS
    for module in network.modules():
        target = table.get(type(module))
        if target is not None:
            module.__class__ = target
    return network


def is_fused(network: torch.nn.Module) -> bool:
    """Whether any block of ``network`` runs a fused kernel."""
    return any(type(module) in PLAIN_BLOCKS for module in network.modules())
