"""Loss terms against values computed independently, by hand or with explicit loops."""

from __future__ import annotations

import math

import hydra
import pytest
import torch

from avvp_lit.losses import (
    CompositeLoss,
    CoOccurrence,
    MissingLossInput,
    ModalityBCE,
    Orthogonality,
    PseudoLabelBCE,
    Reconstruction,
    VideoBCE,
    cooccurrence_targets,
)
from avvp_lit.models import ParsingOutput
from tests.helpers.training import compose_raw

B, T, K, D, H = 2, 10, 25, 4, 6


def make_output(seed: int = 0, **overrides) -> ParsingOutput:
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.rand(*shape, generator=g)

    fields = {
        "global_prob": r(B, K),
        "a_prob": r(B, K),
        "v_prob": r(B, K),
        "frame_prob": r(B, T, 2, K),
        "frame_logits": torch.randn(B, T, 2, K, generator=g),
        "attn_maps": {
            m: torch.softmax(torch.randn(B, T, K, K, generator=g), -1)
            for m in ("aa", "av", "vv", "va")
        },
        "holistic_a": torch.randn(B, T, H, generator=g),
        "holistic_v": torch.randn(B, T, H, generator=g),
        "recon_a": r(B, T, H),
        "recon_v": r(B, T, H),
        "class_features_a": r(B, T, K, D),
        "class_features_v": r(B, T, K, D),
        "background_a": r(B, T, D),
        "background_v": r(B, T, D),
    }
    fields.update(overrides)
    return ParsingOutput(**fields)


def make_batch(seed: int = 1, pseudo: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {"label": (torch.rand(B, K, generator=g) < 0.3).float(), "index": torch.arange(B)}
    if pseudo:
        batch["pl_audio"] = (torch.rand(B, T, K, generator=g) < 0.3).float()
        batch["pl_visual"] = (torch.rand(B, T, K, generator=g) < 0.3).float()
    return batch


def bce(p: float, y: float) -> float:
    """Binary cross-entropy of a probability clamped to [1e-7, 1 - 1e-7] in float32."""
    p = torch.tensor(p, dtype=torch.float32).clamp(1e-7, 1 - 1e-7).item()
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def mean_bce(probs: torch.Tensor, targets: torch.Tensor) -> float:
    pairs = list(zip(probs.flatten().tolist(), targets.flatten().tolist(), strict=True))
    return sum(bce(p, y) for p, y in pairs) / len(pairs)


def cos(x: torch.Tensor, y: torch.Tensor) -> float:
    return (x @ y).item() / max(x.norm().item() * y.norm().item(), 1e-8)


def test_video_bce_clamps_probabilities():
    out = make_output()
    out.global_prob[0, 0], out.global_prob[0, 1] = 0.0, 1.0  # would be inf without the clamp
    batch = make_batch()
    batch["label"][0, 0], batch["label"][0, 1] = 1.0, 0.0
    value = VideoBCE()(out, batch)
    assert math.isfinite(value.item())
    assert value.item() == pytest.approx(mean_bce(out.global_prob, batch["label"]), rel=1e-5)


def test_modality_bce_smooths_the_visual_target():
    out, batch = make_output(), make_batch()
    y = batch["label"]
    expected = mean_bce(out.a_prob, y) + mean_bce(out.v_prob, 0.9 * y + 0.05)
    assert ModalityBCE()(out, batch).item() == pytest.approx(expected, rel=1e-5)


def test_pseudo_label_bce_per_second_logits():
    out, batch = make_output(), make_batch()
    expected = 0.0
    for m, key in ((0, "pl_audio"), (1, "pl_visual")):
        probs = torch.sigmoid(out.frame_logits[:, :, m])
        expected += mean_bce(probs, batch[key])
    assert PseudoLabelBCE()(out, batch).item() == pytest.approx(expected, rel=1e-5)
    only_audio = PseudoLabelBCE(modalities=["audio"])(out, batch).item()
    probs = torch.sigmoid(out.frame_logits[:, :, 0])
    assert only_audio == pytest.approx(mean_bce(probs, batch["pl_audio"]), rel=1e-5)


def test_reconstruction_is_the_mse_of_both_modalities():
    out = make_output()
    expected = sum(
        ((r - h) ** 2).mean().item()
        for r, h in ((out.recon_a, out.holistic_a), (out.recon_v, out.holistic_v))
    )
    assert Reconstruction()(out, {}).item() == pytest.approx(expected, rel=1e-6)


def test_orthogonality_modes_by_hand():
    out = make_output()
    ca, bga = out.class_features_a, out.background_a
    cv, bgv = out.class_features_v, out.background_v
    per_class = [cos(ca[b, t, k], bga[b, t]) for b in range(B) for t in range(T) for k in range(K)]
    class_mean = [cos(cv[b, t].mean(0), bgv[b, t]) for b in range(B) for t in range(T)]
    expected_a = sum(per_class) / len(per_class)
    expected_v = sum(class_mean) / len(class_mean)
    assert Orthogonality(visual=None)(out, {}).item() == pytest.approx(expected_a, rel=1e-5)
    assert Orthogonality(audio=None)(out, {}).item() == pytest.approx(expected_v, rel=1e-5)
    both = Orthogonality()(out, {}).item()
    assert both == pytest.approx(expected_a + expected_v, rel=1e-5)


def test_cooccurrence_targets_by_hand():
    batch = make_batch()
    pa, pv = batch["pl_audio"], batch["pl_visual"]
    targets = cooccurrence_targets(pa, pv)
    for b, t, i, j in [(0, 0, 0, 0), (1, 3, 2, 7), (0, 9, 24, 1), (1, 5, 4, 4)]:
        assert targets["aa"][b, t, i, j] == pa[b, t, i] * pa[b, t, j]
        assert targets["vv"][b, t, i, j] == pv[b, t, i] * pv[b, t, j]
        assert targets["av"][b, t, i, j] == pa[b, t, i] * pv[b, t, j]
        assert targets["va"][b, t, i, j] == pv[b, t, i] * pa[b, t, j]
    # every entry, by explicit loops for one (b, t)
    b, t = 1, 4
    for i in range(K):
        for j in range(K):
            assert targets["av"][b, t, i, j] == pa[b, t, i] * pv[b, t, j]


def test_cooccurrence_mse_and_weak_label_fallback():
    out = make_output()
    batch = make_batch()
    targets = cooccurrence_targets(batch["pl_audio"], batch["pl_visual"])
    expected = sum(((out.attn_maps[m] - targets[m]) ** 2).mean().item() for m in targets)
    assert CoOccurrence()(out, batch).item() == pytest.approx(expected, rel=1e-5)
    # without pseudo labels: the weak labels tiled over the 10 seconds, for every map
    weak = make_batch(pseudo=False)
    y = weak["label"]
    tiled = y[:, None, :, None] * y[:, None, None, :]  # (B, 1, K, K): y_i·y_j
    expected = sum(((out.attn_maps[m] - tiled) ** 2).mean().item() for m in targets)
    assert CoOccurrence()(out, weak).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(MissingLossInput, match="pl_audio"):
        CoOccurrence(fallback="error")(out, weak)


def test_cooccurrence_subset_and_missing_maps():
    out = make_output()
    batch = make_batch()
    only = CoOccurrence(maps=["aa", "vv"])(out, batch).item()
    targets = cooccurrence_targets(batch["pl_audio"], batch["pl_visual"])
    expected = sum(((out.attn_maps[m] - targets[m]) ** 2).mean().item() for m in ("aa", "vv"))
    assert only == pytest.approx(expected, rel=1e-5)
    partial = make_output(attn_maps={"aa": out.attn_maps["aa"], "vv": out.attn_maps["vv"]})
    with pytest.raises(MissingLossInput, match=r"\['av', 'va'\].*loss\.terms\.cooccurrence"):
        CoOccurrence()(partial, batch)
    with pytest.raises(ValueError):
        CoOccurrence(maps=["ab"])


def test_missing_inputs_name_the_key_and_the_config():
    out, batch = make_output(), make_batch(pseudo=False)
    with pytest.raises(
        MissingLossInput, match=r"pl_audio.*data=llp_valor.*~loss\.terms\.pseudo_label"
    ):
        PseudoLabelBCE()(out, batch)
    no_recon = make_output(recon_a=None)
    with pytest.raises(MissingLossInput, match=r"recon_a.*model/decoupling=cafd"):
        Reconstruction()(no_recon, batch)
    no_bg = make_output(background_a=None)
    with pytest.raises(MissingLossInput, match=r"background_a.*~loss\.terms\.orthogonality"):
        Orthogonality()(no_bg, batch)


def test_composite_weights_and_total():
    out, batch = make_output(), make_batch()
    loss = CompositeLoss(
        terms={"a": VideoBCE(weight=2.0), "b": Reconstruction(weight=0.5), "c": None}
    )
    values = loss(out, batch)
    assert set(values) == {"a", "b", "total"}
    assert values["a"].item() == pytest.approx(2.0 * VideoBCE()(out, batch).item())
    assert values["b"].item() == pytest.approx(0.5 * Reconstruction()(out, batch).item())
    assert values["total"].item() == pytest.approx(values["a"].item() + values["b"].item())
    with pytest.raises(ValueError):
        CompositeLoss(terms={})


def compose_loss(name: str, *overrides: str):
    cfg = compose_raw([f"+loss={name}", *overrides])
    return hydra.utils.instantiate(cfg.loss)


def test_published_loss_configs():
    mmcse = compose_loss("mmcse")
    assert mmcse.weights == {
        "video_bce": 1.0,
        "pseudo_label": 1.0,
        "reconstruction": 0.5,
        "orthogonality": 0.1,
        "cooccurrence": 0.1,
    }
    out, batch = make_output(), make_batch()
    values = mmcse(out, batch)
    expected = (
        VideoBCE()(out, batch)
        + PseudoLabelBCE()(out, batch)
        + 0.5 * Reconstruction()(out, batch)
        + 0.1 * Orthogonality()(out, batch)
        + 0.1 * CoOccurrence()(out, batch)
    )
    assert values["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    han = compose_loss("han")
    assert han.weights == {"video_bce": 1.0, "modality_bce": 1.0}
    y = batch["label"]
    expected = (
        mean_bce(out.global_prob, y)
        + mean_bce(out.a_prob, y)
        + mean_bce(out.v_prob, 0.9 * y + 0.05)
    )
    assert han(out, batch)["total"].item() == pytest.approx(expected, rel=1e-5)
    reduced = compose_loss("mmcse", "~loss.terms.reconstruction", "~loss.terms.orthogonality")
    assert set(reduced.weights) == {"video_bce", "pseudo_label", "cooccurrence"}
