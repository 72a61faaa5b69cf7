"""Training equivalence with the ORIGINAL MM-CSE training loop (float64, 22 steps).

``../shared/golden/train_lockstep_visible.pt`` holds the original loop's initial weights,
batches, recipe, per-step losses and a fingerprint of its final weights; its checker
``check_lockstep.py`` defines the criteria. Here the steps run through the project's own
path: ``engine.builders.build_module`` on ``experiment=mmcse_llp`` (loss, AdamW, StepLR, metrics),
``lightning.Trainer`` with the config's gradient clipping, for the plain blocks and for
the fused CPU kernels; every float64 criterion of the file must hold.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from avvp_lit.engine.builders import build_module
from avvp_lit.models.fused import is_fused

pytestmark = pytest.mark.slow


def load_checker(golden_dir):
    path = golden_dir / "check_lockstep.py"
    spec = importlib.util.spec_from_file_location("check_lockstep", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_lockstep", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_float64_training_steps_match_the_original_loop(golden_dir, fused):
    checker = load_checker(golden_dir)
    golden = torch.load(
        golden_dir / "train_lockstep_visible.pt", map_location="cpu", weights_only=True
    )
    checker.ensure_fingerprints(golden)
    assert checker.check_vectors(golden) <= checker.VECTOR_SELF_CHECK
    cfg = checker.compose("mmcse_llp", [f"fused={str(fused).lower()}"])
    torch.manual_seed(0)
    network = checker.build_network(golden["initial_state_dict"], torch.float64)
    module = build_module(cfg, network=network).train()
    assert is_fused(module.network) == fused
    settings = checker.settings_of(module, cfg)
    for key in ("optimizer", "lr", "weight_decay", "betas", "eps", "grad_clip_norm"):
        assert settings[key] == pytest.approx(golden["optimizer"][key]), key
    assert (settings["scheduler"], settings["step_size"]) == ("StepLR", 10)

    steps = checker.run_lightning(golden, module, cfg, torch.float64)
    checks, details = checker.compare(golden, steps, checker.official(module.network), "float64")
    failed = {name: value for name, value in checks.items() if not value[0] <= value[1]}
    assert not failed, failed
    assert len(steps) == 22
    assert details["final_fp_all"] < 1e-10  # measured ~1e-14: the same arithmetic
