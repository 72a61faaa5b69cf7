"""VALOR++ (Franklin905/VALOR, NeurIPS 2023) built from the suite's blocks, proven equal to
the original code: its forward pass (``valor_pp.io.pt``), 12 steps of its training loop
in float64 through ``avvp-train``'s module, loss, optimizer, clipping and warm-up +
cosine rule (``valor_pp.train.pt``, or any trajectory in that format named by
``AVVP_VALOR_LOCKSTEP``), its checkpoints both ways, and the pre-norm form against a
re-derivation of the original layer written here from its equations."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from avvp_lit.cli.convert import main as convert_main
from avvp_lit.engine.builders import build_module
from avvp_lit.engine.schedules import WarmupCosine, warmup_cosine_lr
from avvp_lit.models.convert import load_official, to_official
from avvp_lit.models.loading import read_network
from avvp_lit.models.projection import ClapMapProjection, clap_resampling_matrix
from tests.helpers import SHARED
from tests.helpers.training import compose_raw

INPUTS = ("audio", "visual", "visual_st")
OUTPUTS = ("global_prob", "a_prob", "v_prob", "frame_prob", "frame_logits")
TRAJECTORY = Path(os.environ.get("AVVP_VALOR_LOCKSTEP", SHARED / "golden" / "valor_pp.train.pt"))
RELATIVE = 1e-9


def golden_file(golden_dir: Path, name: str) -> dict:
    return torch.load(golden_dir / name, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------- forward


def test_forward_equals_the_original_network(golden_dir: Path) -> None:
    state = golden_file(golden_dir, "valor_pp.state_dict.pt")
    io = golden_file(golden_dir, "valor_pp.io.pt")
    net = load_official(state, "valor")
    with torch.no_grad():
        out = net(*(io["inputs"][k] for k in INPUTS))
    for key in OUTPUTS:
        torch.testing.assert_close(getattr(out, key), io["outputs"][key], atol=1e-5, rtol=0)


def test_checkpoints_convert_both_ways(golden_dir: Path, tmp_path: Path) -> None:
    state = golden_file(golden_dir, "valor_pp.state_dict.pt")
    back = to_official(load_official(state, "valor"), "valor")
    assert list(back) == list(state)  # the original keys, in the original order
    for key, value in state.items():  # the unused final norms are ones and zeros in both
        assert torch.equal(back[key], value), key
    source, out = tmp_path / "checkpoint_best.pt", tmp_path / "valor.pt"
    torch.save(state, source)
    assert convert_main([str(source), str(out), "--arch", "valor"]) == 0
    loaded = read_network(out)
    assert loaded.model_config["name"] == "valor" and loaded.model_config["feature_set"] == "valor"
    io = golden_file(golden_dir, "valor_pp.io.pt")
    with torch.no_grad():
        out = loaded.network(*(io["inputs"][k] for k in INPUTS))
    torch.testing.assert_close(out.frame_logits, io["outputs"]["frame_logits"], atol=1e-5, rtol=0)


def _attention(x: torch.Tensor, kv: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    """The original's ``nn.MultiheadAttention`` (8 heads, sequence-first) from its weights."""
    out, _ = F.multi_head_attention_forward(
        x, kv, kv, 256, 8,
        state[f"{prefix}.in_proj_weight"], state[f"{prefix}.in_proj_bias"], None, None, False,
        0.0, state[f"{prefix}.out_proj.weight"], state[f"{prefix}.out_proj.bias"],
        training=False, need_weights=False,
    )  # fmt: skip
    return out


def reference_valor(state: dict, audio, visual, visual_st, norm_where: str) -> torch.Tensor:
    """VALOR's MMIL_Net forward written from its equations (main_network.py), on the
    original state dict: the frame logits (B, 10, 2, 25)."""

    def linear(x, name):
        return F.linear(x, state[f"{name}.weight"], state[f"{name}.bias"])

    def norm(x, name):
        return F.layer_norm(x, (x.shape[-1],), state[f"{name}.weight"], state[f"{name}.bias"])

    fmap = audio.transpose(1, 2).reshape(-1, 768, 2, 32)
    fmap = F.interpolate(fmap, size=(2, 1024), mode="bicubic")
    x1 = linear(fmap.permute(0, 2, 3, 1), "fc_a").permute(0, 3, 1, 2).mean(2)
    a = F.adaptive_avg_pool1d(x1, 10).transpose(1, 2)  # (B, 10, 256)
    v = linear(torch.cat([linear(visual, "fc_v"), linear(visual_st, "fc_st")], -1), "fc_fusion")

    def layer(i: int, q: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        p = f"hat_encoder.layers.{i}"
        q, o = q.transpose(0, 1), o.transpose(0, 1)  # (T, B, H)
        if norm_where == "post_norm":
            q = norm(q + _attention(q, o, state, f"{p}.cm_attn") + _attention(q, q, state,
                     f"{p}.self_attn"), f"{p}.norm1")  # fmt: skip
            q = norm(q + linear(F.relu(linear(q, f"{p}.linear1")), f"{p}.linear2"), f"{p}.norm2")
        else:
            n = norm(q, f"{p}.norm1")
            q = (
                q
                + _attention(n, o, state, f"{p}.cm_attn")
                + _attention(n, n, state, f"{p}.self_attn")
            )
            q = q + linear(F.relu(linear(norm(q, f"{p}.norm2"), f"{p}.linear1")), f"{p}.linear2")
        return q.transpose(0, 1)

    for i in range(4):
        a = layer(i, a, v)
        v = layer(i, v, a)
    if norm_where == "pre_norm":
        a, v = norm(a, "hat_encoder.final_norm_a"), norm(v, "hat_encoder.final_norm_v")
    return linear(torch.stack([a, v], dim=-2), "fc_prob")


@pytest.mark.parametrize("norm_where", ["post_norm", "pre_norm"])
def test_both_layer_forms_equal_a_re_derivation_of_the_original(golden_dir, norm_where) -> None:
    state = golden_file(golden_dir, "valor_pp.state_dict.pt")  # float32, as released
    g = torch.Generator().manual_seed(3)
    for key in ("hat_encoder.final_norm_a.weight", "hat_encoder.final_norm_v.bias"):
        state[key] = state[key] + 0.1 * torch.randn(256, generator=g)
    net = load_official(state, "valor", norm_where=norm_where).double()
    state = {k: v.double() for k, v in state.items()}
    refresh_resampling(net)
    inputs = [torch.randn(3, *s, generator=g, dtype=torch.float64) for s in
              ((64, 768), (10, 768), (10, 512))]  # fmt: skip
    with torch.no_grad():
        ours = net(*inputs).frame_logits
    expected = reference_valor(state, *inputs, norm_where)
    torch.testing.assert_close(ours, expected, atol=1e-10, rtol=0)
    moved_norms = [k for k in state if "final_norm" in k]
    back = to_official(net, "valor")
    same = [torch.equal(back[k].double(), state[k]) for k in moved_norms]
    assert all(same) is (norm_where == "pre_norm")  # post_norm: unused, written fresh


def test_the_original_network_is_the_packaged_valor_config(golden_dir: Path) -> None:
    from avvp_lit.models.convert import official_model_config

    state = golden_file(golden_dir, "valor_pp.state_dict.pt")
    packaged = OmegaConf.to_container(compose_raw(["+model=valor"]).model, resolve=True)
    assert official_model_config(state, "valor") == packaged


# --------------------------------------------------------------------------- recipe


def test_the_warm_up_cosine_rule_is_valors() -> None:
    rule = {"max_lr": 3e-4, "warmup_epochs": 10, "max_epochs": 60, "min_lr": 3e-6}
    assert [warmup_cosine_lr(e, **rule) for e in (1, 9, 10)] == pytest.approx(
        [3e-5, 2.7e-4, 3e-4], rel=1e-12
    )
    assert warmup_cosine_lr(35, **rule) == pytest.approx(1.515e-4, rel=1e-12)
    assert warmup_cosine_lr(60, **rule) == pytest.approx(3e-6, rel=1e-12)
    expected_11 = 3e-6 + 0.5 * (3e-4 - 3e-6) * (1 + math.cos(math.pi / 50))
    assert warmup_cosine_lr(11, **rule) == pytest.approx(expected_11, rel=1e-12)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    schedule = WarmupCosine(optimizer, warmup_epochs=10, max_epochs=60, min_lr=3e-6)
    seen = []
    for _ in range(60):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([warmup_cosine_lr(e, **rule) for e in range(1, 61)], rel=1e-12)


def test_the_valor_llp_experiment_is_the_released_recipe() -> None:
    cfg = compose_raw(["experiment=valor_llp", "data.root=/data/llp"], "train")
    assert (cfg.model.name, cfg.loss.terms.keys(), cfg.data.feature_set) == (
        "valor", {"video_bce", "pseudo_label"}, "valor"
    )  # fmt: skip
    assert cfg.optimizer._target_ == "torch.optim.AdamW" and cfg.optimizer.lr == 3e-4
    assert (cfg.optimizer.weight_decay, list(cfg.optimizer.betas), cfg.optimizer.eps) == (
        1e-3, [0.5, 0.999], 1e-8
    )  # fmt: skip
    assert cfg.scheduler._target_ == "avvp_lit.engine.schedules.WarmupCosine"
    assert (cfg.scheduler.warmup_epochs, cfg.scheduler.max_epochs, cfg.scheduler.min_lr) == (
        10, 60, 3e-6
    )  # fmt: skip
    assert (cfg.data.batch_size, cfg.trainer.max_epochs, cfg.trainer.gradient_clip_val) == (
        64, 60, 1.0
    )  # fmt: skip
    assert (cfg.seed, cfg.metrics.gating, cfg.callbacks.model_checkpoint.monitor) == (
        87, "global", "val/seg_type"
    )  # fmt: skip
    model = OmegaConf.to_container(cfg.model, resolve=True)
    assert model["enhancement"]["num_heads"] == 8 and model["enhancement"]["ffn_dim"] == 1024
    assert model["hidden_dim"] == 256 and model["num_layers"] == 4


# --------------------------------------------------------------------------- training


def refresh_resampling(net: torch.nn.Module) -> None:
    """The CLAP resampling matrix unrounded (it is stored as float32; a float64 run uses
    it in float64, as the original's float64 bicubic chain is)."""
    for m in net.modules():
        if isinstance(m, ClapMapProjection):
            m.resampling = clap_resampling_matrix(m.map_size, m.resize, m.num_segments)


def zero_dropout(net: torch.nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if isinstance(m, torch.nn.MultiheadAttention):
            m.dropout = 0.0


def fingerprint(state: dict, initial: dict) -> dict[str, dict[str, float]]:
    """The file's definition: per key (state-dict order) sum, sum of squares, dot with a
    ±1 vector drawn key by key from Generator(1234), L2 distance moved; float64."""
    generator = torch.Generator().manual_seed(1234)
    out = {}
    for key, value in state.items():
        x = value.double().flatten()
        signs = (torch.randint(0, 2, (x.numel(),), generator=generator) * 2 - 1).double()
        moved = torch.linalg.vector_norm(x - initial[key].double().flatten())
        out[key] = {
            "sum": float(x.sum()),
            "sumsq": float((x * x).sum()),
            "dot": float(x @ signs),
            "moved": float(moved),
        }
    return out


class Recorder(L.Callback):
    """Per step: the lr it ran at, the pre-clip gradient norm, the loss terms."""

    def __init__(self, module) -> None:
        self.steps: list[dict[str, float]] = []
        self.module = module
        forward = module.network.forward

        def keep(*args, **kwargs):
            self.output = forward(*args, **kwargs)
            return self.output

        module.network.forward = keep

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps.append({"lr": trainer.optimizers[0].param_groups[0]["lr"]})
        self.batch = batch

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        norms = [p.grad.norm() for p in pl_module.parameters() if p.grad is not None]
        self.steps[-1]["grad_norm"] = float(torch.linalg.vector_norm(torch.stack(norms)))
        terms = self.module.loss.terms
        with torch.no_grad():
            self.steps[-1].update(
                loss_video=float(terms["video_bce"](self.output, self.batch)),
                loss_pl_audio=float(
                    terms["pseudo_label"].modality_loss(self.output, self.batch, "audio")
                ),
                loss_pl_visual=float(
                    terms["pseudo_label"].modality_loss(self.output, self.batch, "visual")
                ),
            )
        self.steps[-1]["total"] = float(trainer.callback_metrics["train/total"])


def close(ours: float, theirs: float, floor: float = 0.0) -> bool:
    return abs(ours - theirs) <= RELATIVE * abs(theirs) + floor


@pytest.mark.slow
@pytest.mark.skipif(not TRAJECTORY.is_file(), reason=f"{TRAJECTORY} is absent")
def test_float64_training_steps_match_the_original_loop() -> None:
    golden = torch.load(TRAJECTORY, map_location="cpu", weights_only=True)
    rule = golden["optimizer"]["scheduler"]
    spe, epochs = rule["steps_per_epoch"], rule["epochs"]
    adamw = golden["optimizer"]["AdamW"]
    cfg = compose_raw(
        [
            "experiment=valor_llp", "data.root=unused", "logger=none",
            f"trainer.max_epochs={epochs}", f"scheduler.warmup_epochs={rule['warm_up_epoch']}",
            f"scheduler.min_lr={rule['lr_min']}", f"optimizer.lr={rule['lr_max']}",
        ],
        "train",
    )  # fmt: skip
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.optimizer.eps) == (
        adamw["lr"], adamw["weight_decay"], adamw["eps"]
    )  # fmt: skip
    assert tuple(cfg.optimizer.betas) == tuple(adamw["betas"])
    assert cfg.trainer.gradient_clip_val == golden["optimizer"]["clip_grad_norm"]
    initial = golden["initial_state_dict"]
    network = load_official({k: v.clone() for k, v in initial.items()}, "valor")
    zero_dropout(network)
    network = network.double()
    refresh_resampling(network)
    module = build_module(cfg, network=network).train()
    videos = {k: v.double() for k, v in golden["videos"].items()}

    class Batches(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.epoch = 0

        def __len__(self) -> int:
            return spe

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            index = golden["batch_indices"][self.epoch * spe + i]
            return {**{k: v[index] for k, v in videos.items()}, "index": index.clone()}

    data = Batches()

    class Epochs(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            data.epoch = trainer.current_epoch

    recorder = Recorder(module)
    loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(
            default_root_dir=tmp, accelerator="cpu", devices=1, precision="64-true",
            max_epochs=epochs, gradient_clip_val=cfg.trainer.gradient_clip_val,
            limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, logger=False,
            callbacks=[Epochs(), recorder], log_every_n_steps=1,
        )  # fmt: skip
        trainer.fit(module, train_dataloaders=loader)

    assert len(recorder.steps) == len(golden["per_step"]) == len(golden["batch_indices"])
    for step, (ours, theirs) in enumerate(zip(recorder.steps, golden["per_step"], strict=True)):
        for name, value in theirs.items():
            assert close(ours[name], value), (step, name, ours[name], value)
    final = fingerprint(to_official(module.network, "valor"), initial)
    expected = golden["final_fingerprint"]
    assert list(final) == list(expected)
    wrong = {}
    for key, stats in expected.items():
        for stat, value in stats.items():
            # the biases of the two softmax logits (over time, over modalities) get an
            # exactly zero gradient; what they move is weight decay plus round-off that
            # differs between any two float64 runs (~3e-15 absolute)
            floor = 1e-13 if stat == "moved" else 0.0
            if not close(final[key][stat], value, floor):
                wrong[f"{key}.{stat}"] = (final[key][stat], value)
    assert not wrong, wrong


@pytest.mark.slow
def test_valor_trains_and_tests_on_the_built_in_data(tmp_path: Path, data_dir: Path) -> None:
    """The recipe's blocks (network, loss, warm-up + cosine) through a whole run."""
    from avvp_lit.engine.tasks import train_and_test
    from avvp_lit.metrics import METRIC_NAMES
    from tests.helpers.training import run_config, tiny_root

    overrides = [
        "experiment=smoke", "model=valor", "loss=valor", "scheduler=warmup_cosine",
        "scheduler.warmup_epochs=1", "trainer.max_epochs=2", "model.num_layers=1",
        f"data.root={tiny_root(data_dir, 'valor')}", "logger=csv", "callbacks.dashboard=null",
    ]  # fmt: skip
    payload = train_and_test(run_config("train", overrides, tmp_path, data_dir))
    assert all(0.0 <= payload[name] <= 100.0 for name in METRIC_NAMES)
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["avvp_lit"]["network_config"]["name"] == "valor"
    assert saved["lr_schedulers"][0]["warmup_epochs"] == 1  # WarmupCosine's state


@pytest.mark.slow
def test_a_run_on_real_data_prints_the_published_row_of_its_method(
    tmp_path: Path, data_dir: Path, capsys
) -> None:
    """Beside the run on real-layout data, VALOR++'s published row; never on the
    built-in synthetic data (previous test), where published numbers do not apply."""
    from avvp_lit.engine.tasks import train_and_test
    from avvp_lit.metrics.published import published_row
    from tests.helpers.datasets import write_dataset
    from tests.helpers.training import run_config

    root = tmp_path / "llp"
    write_dataset(root, "valor", (8, 4, 4), seed=3)
    overrides = [
        "experiment=smoke", "data=llp_valor", f"data.root={root}", "data.in_memory=false",
        "data.num_workers=0", "data.batch_size=4", "model=valor", "loss=valor",
        "model.num_layers=1", "logger=csv", "callbacks.dashboard=null", "debug=fast_dev_run",
    ]  # fmt: skip
    payload = train_and_test(run_config("train", overrides, tmp_path / "run", data_dir))
    row = published_row("valor", "valor")
    assert payload["published"]["method"] == "VALOR++" and payload["published"]["metrics"] == (
        row.metrics
    )
    printed = capsys.readouterr().out
    assert "published VALOR++" in printed and "66.20" in printed  # Seg Type@AV, published
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "| published VALOR++ |" in summary and "Table A6" in summary


def test_synthetic_runs_record_no_published_row(tmp_path: Path) -> None:
    from avvp_lit.engine.results import run_published_row

    module = type("Module", (), {"network_config": {"name": "valor"}})()
    synthetic = compose_raw(["experiment=synthetic", "model=valor", "loss=valor"], "train")
    assert run_published_row(synthetic, module) is None
    real = compose_raw(["experiment=valor_llp", "data.root=/x"], "train")
    assert run_published_row(real, module).method == "VALOR++"
    module.network_config = {"name": "mmcse"}  # no published MM-CSE row could be verified
    assert run_published_row(real, module) is None


def test_the_published_rows_are_the_ones_docs_results_md_cites() -> None:
    from avvp_lit.metrics import METRIC_NAMES
    from avvp_lit.metrics.published import published_rows
    from tests.helpers import REPO

    text = (REPO / "docs" / "results.md").read_text()
    for row in published_rows():
        cells = " | ".join(f"{row.metrics[name]:.1f}" for name in METRIC_NAMES)
        assert cells in text, row.method
