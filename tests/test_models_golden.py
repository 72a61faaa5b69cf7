"""Converted original checkpoints reproduce the original implementations' outputs.

``../shared/golden/<name>.io.pt`` holds the outputs of the released HAN / MM-CSE code in
eval mode for the state dict ``<name>.state_dict.pt``; every output must agree to 1e-5.
"""

from __future__ import annotations

import pytest
import torch

from avvp_lit.losses import Orthogonality, Reconstruction
from avvp_lit.models import ClassWiseParsingNetwork, HolisticParsingNetwork
from avvp_lit.models.convert import UNUSED_PREFIXES, load_official, to_official
from avvp_lit.models.projection import FramePooledProjection

TOL = 1e-5
CASES = [("mmcse_han", "mmcse"), ("mmcse_clip", "mmcse"), ("han", "han")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load_case(golden_dir, name):
    state = torch.load(golden_dir / f"{name}.state_dict.pt", weights_only=True)
    io = torch.load(golden_dir / f"{name}.io.pt", weights_only=True)
    return state, io


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.mark.parametrize(("name", "arch"), CASES)
def test_converted_network_reproduces_golden_outputs(golden_dir, name, arch):
    state, io = load_case(golden_dir, name)
    net = load_official(state, arch).eval()
    assert isinstance(net, ClassWiseParsingNetwork if arch == "mmcse" else HolisticParsingNetwork)
    with torch.no_grad():
        out = net(**io["inputs"])
    expected = io["outputs"]
    for key in ("global_prob", "a_prob", "v_prob", "frame_prob"):
        assert max_diff(getattr(out, key), expected[key]) <= TOL, key
    if arch == "han":
        # HAN's golden file has no logits: ours are the pre-sigmoid per-second logits
        assert max_diff(torch.sigmoid(out.frame_logits), expected["frame_prob"]) <= TOL
        assert out.attn_maps is None
        return
    assert max_diff(out.frame_logits, expected["frame_logits"]) <= TOL
    for key in ("aa", "av", "vv", "va"):
        assert max_diff(out.attn_maps[key], expected[f"map_{key}"]) <= TOL, key
    # the auxiliary terms, computed by our loss modules (unweighted, one modality each)
    terms = {
        "loss_a_rec": Reconstruction(modalities=["audio"]),
        "loss_v_rec": Reconstruction(modalities=["visual"]),
        "loss_a_ort": Orthogonality(visual=None),
        "loss_v_ort": Orthogonality(audio=None),
    }
    for key, term in terms.items():
        assert abs(term(out, {}).item() - expected[key].item()) <= TOL, key


@pytest.mark.parametrize(("name", "arch"), CASES)
def test_round_trip_official_ours_official_is_bit_identical(golden_dir, name, arch):
    state, _ = load_case(golden_dir, name)
    back = to_official(load_official(state, arch), arch)
    # same keys in the same order: the original class loads it with strict=True
    assert list(back) == list(state)
    unused = UNUSED_PREFIXES[arch]
    for key, value in state.items():
        assert back[key].shape == value.shape and back[key].dtype == value.dtype, key
        if key.startswith(unused):
            continue  # never read by the original forward: written freshly initialised
        assert torch.equal(back[key], value), key


def test_unused_modules_are_written_freshly_initialised(golden_dir):
    state, _ = load_case(golden_dir, "han")
    back = to_official(load_official(state, "han"), "han")
    assert torch.equal(back["hat_encoder.norm1.weight"], torch.ones(512))
    assert torch.equal(back["audio_encoder.layers.0.linear1.weight"], torch.zeros(512, 512))


def test_mmcse_clip_audio_path_matches_the_literal_chain(golden_dir):
    """The resampling-matrix CLAP path equals resize -> fc -> mean -> pool, literally."""
    state, io = load_case(golden_dir, "mmcse_clip")
    net = load_official(state, "mmcse").eval()
    audio = net.projection.audio
    with torch.no_grad():
        fast = audio(io["inputs"]["audio"])
        literal = audio.reference_forward(io["inputs"]["audio"])
    assert max_diff(fast, literal) <= 1e-5


def test_frame_pooled_projection_matches_fc_then_mean():
    """Averaging the 8 frames of a second before ``fc`` equals the original fc-then-mean."""
    torch.manual_seed(0)
    visual = FramePooledProjection(in_dim=2048, out_dim=512)
    frames = torch.relu(torch.randn(3, 80, 2048))  # ResNet features are non-negative
    with torch.no_grad():
        fast = visual(frames)
        literal = visual.reference_forward(frames)
        # the literal order is really the per-frame fc: second 3 is frames 24..31
        expected = visual.fc(frames[:, 24:32]).mean(1)
    assert fast.shape == (3, 10, 512)
    assert max_diff(fast, literal) <= 1e-5
    assert max_diff(literal[:, 3], expected) <= 1e-6
