"""torch.compile and bf16 autocast on the plain blocks: one graph, no graph break, and
mixed precision that keeps the probabilities and the losses in float32."""

from __future__ import annotations

import hydra
import pytest
import torch
from torch import nn

from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.models.fused import is_fused
from tests.helpers.training import compose_raw

B, T, K = 2, 10, 25
VALOR_INPUTS = {key: (B, *shape) for key, shape in FEATURE_SETS["valor"].input_shapes.items()}
# every ablation row (conf/variant) that chooses other blocks (no_cooccurrence,
# no_orthogonality and no_reconstruction only drop a loss term of the full model's step)
VARIANTS = ["full", "no_cafd", "cafd_no_background", "no_secm", "no_lgsf", "no_cross_fgse", "han"]
# the block choices no variant makes
BLOCKS = [
    ["model/secm=cross_only", "loss.terms.cooccurrence.maps=[av,va]"],
    ["model/lgsf=cross_only"],
    ["model/lgsf=intra_only"],
]

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def valor_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.randn(*shape, generator=g) for k, shape in VALOR_INPUTS.items()}
    batch["label"] = (torch.rand(B, K, generator=g) < 0.3).float()
    batch["pl_audio"] = (torch.rand(B, T, K, generator=g) < 0.2).float()
    batch["pl_visual"] = (torch.rand(B, T, K, generator=g) < 0.2).float()
    batch["index"] = torch.arange(B)
    return batch


def build(*overrides: str) -> tuple[nn.Module, nn.Module]:
    # two FGSE layers: one without attention maps, the last one with them
    cfg = compose_raw(["data.root=unused", "model.num_layers=2", *overrides], "train")
    torch.manual_seed(0)
    network = hydra.utils.instantiate(cfg.model).train()
    return network, hydra.utils.instantiate(cfg.loss)


def dropout_probabilities(network: nn.Module) -> list[float]:
    return [m.p for m in network.modules() if isinstance(m, nn.Dropout)] + [
        m.dropout for m in network.modules() if isinstance(m, nn.MultiheadAttention)
    ]


@pytest.mark.parametrize(
    "overrides", [[f"+variant={v}"] for v in VARIANTS] + BLOCKS, ids=lambda o: " ".join(o)
)
def test_training_step_traces_as_one_graph_without_breaks(overrides):
    network, loss = build(*overrides)
    assert not is_fused(network)  # what a fresh network runs: the plain blocks
    assert max(dropout_probabilities(network)) > 0  # dropout is on in this step

    def step(batch):
        output = network(batch["audio"], batch["visual"], batch["visual_st"])
        return loss(output, batch)["total"]

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(step)(valor_batch())
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_bf16_autocast_runs_the_network_in_bf16_and_keeps_probabilities_and_losses_float32():
    network, loss = build()
    dtypes: dict[str, torch.dtype] = {}

    def record(name):
        def hook(module, args, output):
            value = output[0] if isinstance(output, tuple) else output
            dtypes[name] = value.dtype

        return hook

    layer = network.enhancement.layers[0]
    for name, module in {
        "fgse": layer,
        "secm_intra": layer.secm.intra,
        "lgsf_cross": layer.lgsf.cross,
        "ffn": layer.linear2,
        "heads": network.heads,
    }.items():
        module.register_forward_hook(record(name))
    batch = valor_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = network(batch["audio"], batch["visual"], batch["visual_st"])
        terms = loss(output, batch)
    assert dtypes["fgse"] == dtypes["secm_intra"] == dtypes["ffn"] == torch.bfloat16
    assert dtypes["lgsf_cross"] == dtypes["heads"] == torch.bfloat16
    for name in ("global_prob", "a_prob", "v_prob", "frame_prob"):
        assert getattr(output, name).dtype == torch.float32, name
    assert all(value.dtype == torch.float32 for value in terms.values())
    terms["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in network.parameters() if p.grad is not None)
    # the same weights in float32: bf16 rounding moves the probabilities a little
    network.eval()
    with torch.no_grad():
        exact = network(batch["audio"], batch["visual"], batch["visual_st"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = network(batch["audio"], batch["visual"], batch["visual_st"])
    error = (mixed.frame_prob - exact.frame_prob).abs().max().item()
    assert 0 < error < 0.05
