"""The last bad inputs found by trying every command with damaged or wrong input: each is
one named line and exit status 2 (or, where the input is usable, a warning), never a
traceback or a quiet acceptance."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from avvp_lit.cli.eval import main as eval_main
from avvp_lit.cli.pack import main as pack_main
from avvp_lit.data.datamodule import LLPDataModule
from avvp_lit.data.features import FEATURE_SETS, FeatureError
from avvp_lit.data.stores import open_store
from avvp_lit.utils.errors import EXIT_BAD_INPUT, describe
from tests.helpers.datasets import write_dataset
from tests.helpers.tiny import TinyNet
from tests.helpers.training import run_app


def the_error_line(err: str, program: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{program}: error: "), err
    assert "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def han_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "llp"
    write_dataset(root, "han", (4, 3, 3), seed=1)
    return root


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    network = TinyNet(feature_set="han")
    config = {"_target_": "tests.helpers.tiny.TinyNet", "feature_set": "han", "class_wise": False}
    state = {f"network.{k}": v for k, v in network.state_dict().items()}
    path = tmp_path / "tiny.ckpt"
    torch.save({"avvp_lit": {"network_config": config, "metrics": {}}, "state_dict": state}, path)
    return path


def parse_args(ckpt: Path, root: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"ckpt={ckpt}",
        f"input={root}",
        "trusted_blocks=[tests.helpers.tiny.TinyNet]",
        "progress=false",
        f"hydra.run.dir={out}",
        *extra,
    ]


# --------------------------------------------------------------------------- tracebacks


def test_switching_off_the_generator_names_the_key(tmp_path, monkeypatch, capsys) -> None:
    run_dir = tmp_path / "run"
    args = ["data.synthetic=null", f"hydra.run.dir={run_dir}"]
    code, err = run_app("avvp_lit.cli.train", args, monkeypatch, capsys)
    assert code == EXIT_BAD_INPUT
    line = the_error_line(err, "avvp-train")
    assert "data.root does not resolve" in line and "data.synthetic=null" in line
    assert not run_dir.exists()


def test_a_predictions_file_without_videos_is_named(han_dataset, tmp_path, capsys) -> None:
    empty = tmp_path / "empty.npz"
    np.savez(
        empty,
        filenames=np.array([], dtype=str),
        global_prob=np.zeros((0, 25), np.float32),
        a_prob=np.zeros((0, 25), np.float32),
        v_prob=np.zeros((0, 25), np.float32),
        frame_prob=np.zeros((0, 10, 2, 25), np.float32),
    )
    assert eval_main([str(empty), "--annotations", str(han_dataset)]) == EXIT_BAD_INPUT
    line = the_error_line(capsys.readouterr().err, "avvp-eval")
    assert f"{empty}: holds no videos" in line


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("bogus", "device='bogus' is not allowed; choose cpu, cuda, cuda:N or auto"),
        ("mps", "device='mps' is not allowed"),
        ("cuda:7", "device='cuda:7'"),
    ],
)
def test_parse_names_a_bad_device_before_any_work(
    device, message, han_dataset, tiny_checkpoint, tmp_path, monkeypatch, capsys
) -> None:
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a device cuda:7")
    out = tmp_path / "out"
    args = parse_args(tiny_checkpoint, han_dataset, out, f"device={device}")
    code, err = run_app("avvp_lit.cli.parse", args, monkeypatch, capsys)
    assert code == EXIT_BAD_INPUT
    assert message in the_error_line(err, "avvp-parse")
    assert not out.exists()


def test_an_error_in_a_dataloader_worker_is_shown_as_its_own_message() -> None:
    """torch re-creates the worker's error with its whole traceback as the message."""
    from torch._utils import ExceptionWrapper

    try:
        raise FeatureError("video 'abc', modality 'audio' (feats/vggish): shape (9, 128)")
    except FeatureError:
        wrapper = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(FeatureError) as raised:
        wrapper.reraise()
    assert "Original Traceback" in str(raised.value)  # what used to be printed
    assert describe(raised.value) == (
        "video 'abc', modality 'audio' (feats/vggish): shape (9, 128)"
    )


@pytest.mark.slow
def test_a_truncated_feature_file_read_in_a_worker_is_one_line(
    tmp_path, monkeypatch, capsys
) -> None:
    root = tmp_path / "llp"
    names = write_dataset(root, "valor", (8, 3, 3), seed=2)
    video = names["train"][0][:11]
    path = root / "CLIP/features" / f"{video}.npy"
    path.write_bytes(path.read_bytes()[:100])
    args = [
        "experiment=smoke", "data=llp_valor", f"data.root={root}", "data.in_memory=false",
        "data.num_workers=2", "data.batch_size=4", "model.num_layers=1", "logger=none",
        "callbacks.dashboard=null", "callbacks.rich_progress_bar=null",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    code, err = run_app("avvp_lit.cli.train", args, monkeypatch, capsys)
    assert code == EXIT_BAD_INPUT
    line = the_error_line(err, "avvp-train")
    assert str(path) in line or video in line, line
    assert "Caught" not in line and "DataLoader worker" not in line


# --------------------------------------------------------------------------- acceptances


def test_complex_features_are_refused() -> None:
    modality = FEATURE_SETS["han"]["audio"]
    array = np.ones(modality.shape, np.complex64)
    with pytest.raises(FeatureError, match="dtype complex64 is complex; features must be real"):
        modality.check(array, "vid", "x.npy")


def test_pack_refuses_complex_features(han_dataset, tmp_path, capsys) -> None:
    names = sorted(p.stem for p in (han_dataset / "feats/vggish").glob("*.npy"))
    np.save(han_dataset / "feats/vggish" / f"{names[0]}.npy", np.ones((10, 128), np.complex128))
    assert pack_main([str(han_dataset), str(tmp_path / "f.h5")]) == EXIT_BAD_INPUT
    line = the_error_line(capsys.readouterr().err, "avvp-pack")
    assert names[0] in line and "complex" in line
    assert not (tmp_path / "f.h5").exists()


def _packed(han_dataset: Path, tmp_path: Path) -> Path:
    out = tmp_path / "packed"
    out.mkdir()
    for csv_file in han_dataset.glob("*.csv"):
        shutil.copy(csv_file, out / csv_file.name)
    assert pack_main([str(han_dataset), str(out / "features.h5")]) == 0
    return out


def test_an_hdf5_store_whose_arrays_disagree_with_its_ids_is_refused_when_opened(
    han_dataset, tmp_path
) -> None:
    root = _packed(han_dataset, tmp_path)
    with h5py.File(root / "features.h5", "r+") as handle:
        ids = list(handle["ids"][()]) + [b"extraVideo01"]
        del handle["ids"]
        handle.create_dataset("ids", data=np.array(ids))
    with pytest.raises(FeatureError, match=r"dataset 'audio' \(feats/vggish\) has 10 rows but "):
        open_store(root, "han", "h5")


def test_an_hdf5_store_with_misshapen_rows_is_refused_when_opened(han_dataset, tmp_path) -> None:
    root = _packed(han_dataset, tmp_path)
    with h5py.File(root / "features.h5", "r+") as handle:
        rows = handle["audio"].shape[0]
        del handle["audio"]
        handle.create_dataset("audio", data=np.zeros((rows, 9, 128), np.float32))
    with pytest.raises(FeatureError, match=r"rows of shape \(9, 128\), expected \(10, 128\)"):
        open_store(root, "han", "h5")


def test_parse_fails_when_no_video_could_be_parsed(
    han_dataset, tiny_checkpoint, tmp_path, monkeypatch, capsys
) -> None:
    for path in (han_dataset / "feats/vggish").glob("*.npy"):
        np.save(path, np.zeros((9, 128), np.float32))
    out = tmp_path / "out"
    args = parse_args(tiny_checkpoint, han_dataset, out)
    code, err = run_app("avvp_lit.cli.parse", args, monkeypatch, capsys)
    assert code == EXIT_BAD_INPUT
    line = the_error_line(err, "avvp-parse")
    assert "none of its 3 videos could be parsed" in line and "skipped.txt" in line
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert len(skipped) == 4 and all("shape (9, 128)" in row for row in skipped[1:])


def test_parse_fails_on_a_folder_without_videos(
    han_dataset, tiny_checkpoint, tmp_path, monkeypatch, capsys
) -> None:
    bare = tmp_path / "bare"
    for modality in FEATURE_SETS["han"].modalities:
        (bare / modality.folder).mkdir(parents=True)
    args = parse_args(tiny_checkpoint, bare, tmp_path / "out")
    code, err = run_app("avvp_lit.cli.parse", args, monkeypatch, capsys)
    assert code == EXIT_BAD_INPUT
    assert "no videos found" in the_error_line(err, "avvp-parse")


def test_training_warns_about_a_video_in_two_splits(han_dataset) -> None:
    val = han_dataset / "AVVP_val_pd.csv"
    train_row = (han_dataset / "AVVP_train.csv").read_text().splitlines()[1]
    val.write_text(val.read_text() + train_row + "\n")
    module = LLPDataModule(root=han_dataset, feature_set="han", in_memory=False, progress=False)
    video = train_row.split("\t")[0][:11]
    with pytest.warns(
        UserWarning, match=rf"1 videos are in both the train and the val split \({video}"
    ):
        module.setup("fit")


@pytest.mark.slow
def test_a_run_resumed_with_no_epoch_left_keeps_its_own_last_checkpoint(tmp_path, data_dir) -> None:
    from avvp_lit.engine.tasks import train_and_test
    from tests.helpers.training import run_config, tiny_root

    root = tiny_root(data_dir, "valor")
    common = [
        "experiment=smoke", "model=han", "model/projection=valor", "loss=han",
        f"data.root={root}", "logger=csv", "callbacks.dashboard=null", "test=false",
    ]  # fmt: skip
    first = tmp_path / "first"
    train_and_test(run_config("train", common, first, data_dir))
    last = first / "checkpoints" / "last.ckpt"
    moved = tmp_path / "moved"
    train_and_test(run_config("train", [*common, f"ckpt_path={last}"], moved, data_dir))
    own = moved / "checkpoints" / "last.ckpt"
    assert own.is_file()
    saved, resumed = (torch.load(p, map_location="cpu", weights_only=True) for p in (own, last))
    assert saved["global_step"] == resumed["global_step"]  # the same point of training
    assert saved["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in resumed["state_dict"].items():
        assert torch.equal(saved["state_dict"][key], value), key
