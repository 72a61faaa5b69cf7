"""`avvp-parse` on tiny hand-made data: events round-trip to the thresholded predictions.

A stand-in network (``TinyNet``, the output contract of the real ones) is saved as an
`avvp-train`-style checkpoint; the events written as CSV and JSON Lines, rasterised
back to (10, 25) arrays per modality, must equal the protocol's binary predictions of
that network, and videos with missing or malformed features are reported and skipped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, open_dict

from avvp_lit.classes import CLASS_INDEX, CLASSES, EVENT_MODALITIES
from avvp_lit.data.features import FEATURE_SETS
from avvp_lit.engine.parsing import extract_events
from avvp_lit.engine.parsing import parse_videos as parse
from avvp_lit.metrics import binarize
from avvp_lit.utils.errors import ConfigError
from tests.helpers import REPO
from tests.helpers.datasets import write_dataset
from tests.helpers.tiny import TinyNet
from tests.helpers.training import compose_raw

SIZES = (2, 3, 8)


def write_checkpoint(path: Path, network: TinyNet) -> Path:
    """The parts of an `avvp-train` checkpoint that ``load_network`` reads."""
    config = {
        "_target_": "tests.helpers.tiny.TinyNet",
        "feature_set": network.feature_set,
        "class_wise": network.class_wise,
    }
    state = {f"network.{k}": v for k, v in network.state_dict().items()}
    torch.save({"avvp_lit": {"network_config": config, "metrics": {}}, "state_dict": state}, path)
    return path


def parse_config(overrides: list[str], output_dir: Path) -> DictConfig:
    cfg = compose_raw(overrides, "parse")
    with open_dict(cfg):
        cfg.output_dir = str(output_dir)
        cfg.progress = False
        del cfg.paths
    return cfg


def expected_predictions(
    network: TinyNet, root: Path, ids: list[str], gating: str, thresholds: tuple[float, float]
) -> tuple[np.ndarray, ...]:
    """Pa, Pv (N, 10, 25) and the frame probabilities, computed without avvp_lit.cli.parse."""
    spec = FEATURE_SETS["han"]
    inputs = [
        torch.from_numpy(np.stack([np.load(root / spec[k].folder / f"{v}.npy") for v in ids]))
        for k in ("audio", "visual", "visual_st")
    ]
    with torch.no_grad():
        out = network.eval()(*inputs)
    pred_a, pred_v = binarize(
        out.global_prob,
        out.a_prob,
        out.v_prob,
        out.frame_prob,
        gating=gating,
        video_threshold=thresholds[0],
        segment_threshold=thresholds[1],
    )
    frame = out.frame_prob.numpy()
    return (
        pred_a.transpose(1, 2).numpy(),
        pred_v.transpose(1, 2).numpy(),
        frame[:, :, 0],
        frame[:, :, 1],
    )


def rasterise_csv(path: Path, filenames: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """events.csv back to (N, 10, 25) per modality, and a score raster (N, 3, 10, 25)."""
    row = {name: i for i, name in enumerate(filenames)}
    arrays = {m: np.zeros((len(filenames), 10, 25), dtype=bool) for m in EVENT_MODALITIES}
    scores = np.full((len(filenames), 3, 10, 25), np.nan)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == (
            "filename",
            "class",
            "modality",
            "onset",
            "offset",
            "score",
        )
        for event in reader:
            i, k = row[event["filename"]], CLASS_INDEX[event["class"]]
            on, off = int(event["onset"]), int(event["offset"])
            assert 0 <= on < off <= 10
            assert not arrays[event["modality"]][i, on:off, k].any(), "overlapping events"
            arrays[event["modality"]][i, on:off, k] = True
            scores[i, EVENT_MODALITIES.index(event["modality"]), on:off, k] = float(event["score"])
    return arrays, scores


def rasterise_jsonl(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    names = [r["filename"] for r in records]
    arrays = {m: np.zeros((len(records), 10, 25), dtype=bool) for m in EVENT_MODALITIES}
    for i, record in enumerate(records):
        for event in record["events"]:
            assert set(event) == {"class", "modality", "onset", "offset", "score"}
            k = CLASS_INDEX[event["class"]]
            arrays[event["modality"]][i, event["onset"] : event["offset"], k] = True
    return names, arrays


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("parse") / "llp"
    return root, write_dataset(root, "han", SIZES, seed=3)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TinyNet]:
    torch.manual_seed(0)
    network = TinyNet()
    path = write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", network)
    return path, network


# --------------------------------------------------------------------------- pure function


def test_extract_events_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    pred_a, pred_v = rng.random((2, 7, 10, 25)) < 0.5
    prob_a, prob_v = rng.random((2, 7, 10, 25))
    events = extract_events(pred_a, pred_v, prob_a, prob_v)
    expected = []
    for n in range(7):
        tracks = (
            (pred_a[n], prob_a[n]),
            (pred_v[n], prob_v[n]),
            (pred_a[n] & pred_v[n], np.minimum(prob_a[n], prob_v[n])),
        )
        for m, (active, prob) in enumerate(tracks):
            for k in range(25):
                t = 0
                while t < 10:
                    if active[t, k]:
                        end = t
                        while end < 10 and active[end, k]:
                            end += 1
                        expected.append((n, t, k, m, end, prob[t:end, k].mean()))
                        t = end
                    t += 1
    expected.sort(key=lambda e: e[:4])
    got = list(
        zip(
            events.video,
            events.onset,
            events.label,
            events.modality,
            events.offset,
            events.score,
            strict=True,
        )
    )
    assert [g[:5] for g in got] == [e[:5] for e in expected]
    np.testing.assert_allclose([g[5] for g in got], [e[5] for e in expected], rtol=1e-12)


def test_extract_events_edges() -> None:
    none = np.zeros((1, 10, 25), dtype=bool)
    assert len(extract_events(none, none, none, none)) == 0
    full = np.ones((1, 10, 25), dtype=bool)
    events = extract_events(full, none, 0.5 * full, none)
    assert len(events) == 25
    assert (events.onset == 0).all() and (events.offset == 10).all()
    np.testing.assert_allclose(events.score, 0.5)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    ("gating", "thresholds"), [("global", (0.5, 0.5)), ("modality", (0.6, 0.55))]
)
def test_parse_round_trips_to_thresholded_predictions(
    dataset: tuple[Path, dict[str, list[str]]],
    checkpoint: tuple[Path, TinyNet],
    tmp_path: Path,
    gating: str,
    thresholds: tuple[float, float],
) -> None:
    root, splits = dataset
    ckpt, network = checkpoint
    cfg = parse_config(
        [
            f"ckpt={ckpt}",
            f"input={root}",
            "split=test",
            "batch_size=3",
            f"metrics.gating={gating}",
            f"metrics.video_threshold={thresholds[0]}",
            f"metrics.segment_threshold={thresholds[1]}",
        ],
        tmp_path / "out",
    )
    summary = parse(cfg)
    names = splits["test"]
    assert summary["mode"] == "dataset" and summary["parsed"] == len(names)
    assert summary["skipped"] == {}
    assert summary["protocol"]["gating"] == gating

    pred_a, pred_v, prob_a, prob_v = expected_predictions(
        network, root, [n[:11] for n in names], gating, thresholds
    )
    assert 0 < pred_a.mean() < 1 and 0 < pred_v.mean() < 1
    jsonl_names, from_jsonl = rasterise_jsonl(tmp_path / "out" / "events.jsonl")
    assert jsonl_names == names
    from_csv, scores = rasterise_csv(tmp_path / "out" / "events.csv", names)
    expected = {"audio": pred_a, "visual": pred_v, "audio-visual": pred_a & pred_v}
    for modality, array in expected.items():
        np.testing.assert_array_equal(from_jsonl[modality], array)
        np.testing.assert_array_equal(from_csv[modality], array)
    events = sum(
        len(json.loads(line)["events"]) for line in (tmp_path / "out" / "events.jsonl").open()
    )
    assert events == summary["events"] > 0
    assert (scores[~np.isnan(scores)] >= thresholds[1] - 1e-4).all()
    assert (tmp_path / "out" / "skipped.txt").read_text() == "filename\treason\n"


def test_scores_are_mean_frame_probabilities(
    dataset: tuple[Path, dict[str, list[str]]], checkpoint: tuple[Path, TinyNet], tmp_path: Path
) -> None:
    root, splits = dataset
    ckpt, network = checkpoint
    parse(parse_config([f"ckpt={ckpt}", f"input={root}", "split=val"], tmp_path))
    names = splits["val"]
    _, _, prob_a, prob_v = expected_predictions(
        network, root, [n[:11] for n in names], "global", (0.5, 0.5)
    )
    for line in (tmp_path / "events.jsonl").open():
        record = json.loads(line)
        i = names.index(record["filename"])
        for event in record["events"]:
            k, span = CLASS_INDEX[event["class"]], slice(event["onset"], event["offset"])
            prob = {
                "audio": prob_a[i],
                "visual": prob_v[i],
                "audio-visual": np.minimum(prob_a[i], prob_v[i]),
            }
            assert event["score"] == pytest.approx(
                prob[event["modality"]][span, k].mean(), abs=1e-4
            )


# --------------------------------------------------------------------------- bad input


def _break_features(root: Path, ids: list[str]) -> dict[str, str]:
    """Damage four videos' features in four ways; returns id -> what the reason must say."""
    spec = FEATURE_SETS["han"]
    (root / spec["visual"].folder / f"{ids[0]}.npy").unlink()
    np.save(root / spec["audio"].folder / f"{ids[1]}.npy", np.zeros((9, 128), np.float32))
    nan = np.zeros((10, 512), np.float32)
    nan[3, 4] = np.nan
    np.save(root / spec["visual_st"].folder / f"{ids[2]}.npy", nan)
    (root / spec["audio"].folder / f"{ids[3]}.npy").write_bytes(b"not an npy file")
    return {ids[0]: "does not exist", ids[1]: "shape (9, 128)", ids[2]: "NaN", ids[3]: "audio"}


def test_missing_and_malformed_features_are_reported_and_skipped(
    checkpoint: tuple[Path, TinyNet], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="avvp_lit.utils.progress")
    root = tmp_path / "llp"
    names = write_dataset(root, "han", SIZES, seed=4)["test"]
    broken = _break_features(root, [names[i][:11] for i in (1, 2, 4, 6)])
    ckpt, _ = checkpoint
    summary = parse(parse_config([f"ckpt={ckpt}", f"input={root}"], tmp_path / "out"))
    by_id = {name[:11]: name for name in names}
    assert set(summary["skipped"]) == {by_id[i] for i in broken}
    for video, reason in broken.items():
        assert reason in summary["skipped"][by_id[video]]
    assert summary["parsed"] == len(names) - 4 and summary["videos"] == len(names)
    skipped_lines = (tmp_path / "out" / "skipped.txt").read_text().splitlines()
    assert skipped_lines[0] == "filename\treason" and len(skipped_lines) == 5
    written = [json.loads(line)["filename"] for line in (tmp_path / "out" / "events.jsonl").open()]
    assert written == [n for n in names if n[:11] not in broken]
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["skipped"] == summary["skipped"]
    assert "skipped 4 videos" in caplog.text


def test_new_videos_without_annotations(checkpoint: tuple[Path, TinyNet], tmp_path: Path) -> None:
    """A bare feature folder: the videos are the ids found, pseudo labels not needed."""
    source = tmp_path / "llp"
    write_dataset(source, "han", (0, 0, 5), seed=5)
    bare = tmp_path / "new"
    for modality in FEATURE_SETS["han"].modalities:
        (bare / modality.folder).parent.mkdir(parents=True, exist_ok=True)
        (source / modality.folder).rename(bare / modality.folder)
    ids = sorted(p.stem for p in (bare / "feats/vggish").glob("*.npy"))
    (bare / "feats/res152" / f"{ids[0]}.npy").unlink()
    ckpt, _ = checkpoint
    summary = parse(parse_config([f"ckpt={ckpt}", f"input={bare}"], tmp_path / "out"))
    assert summary["mode"] == "features" and summary["feature_set"] == "han"
    assert list(summary["skipped"]) == [ids[0]]
    written = [json.loads(line)["filename"] for line in (tmp_path / "out" / "events.jsonl").open()]
    assert written == ids[1:]


@pytest.mark.slow
def test_cli_writes_outputs(
    dataset: tuple[Path, dict[str, list[str]]], checkpoint: tuple[Path, TinyNet], tmp_path: Path
) -> None:
    root, splits = dataset
    ckpt, _ = checkpoint
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "avvp_lit.cli.parse",
            f"ckpt={ckpt}",
            f"input={root}",
            "split=val",
            "trusted_blocks=[tests.helpers.tiny.TinyNet]",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    done = f"parsed {len(splits['val'])} of {len(splits['val'])} videos"
    log = (tmp_path / "run" / "parse.log").read_text()
    assert done in run.stdout and done in log
    # without a terminal, progress is plain lines, and parse.log holds them
    assert f"parsing {len(splits['val'])}/{len(splits['val'])} (100%)" in log
    lines = (tmp_path / "run" / "events.csv").read_text().splitlines()
    assert lines[0] == "filename,class,modality,onset,offset,score"
    assert all(line.split(",")[1] in CLASSES for line in lines[1:])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("metrics.gating=sometimes", "gating"),
        ("split=train2", "split='train2'"),
        ("feature_set=valor", "no CLAP/features, CLIP/features folder for valor"),
    ],
)
def test_config_mistakes_name_the_key(
    dataset: tuple[Path, dict[str, list[str]]],
    checkpoint: tuple[Path, TinyNet],
    tmp_path: Path,
    override: str,
    message: str,
) -> None:
    root, _ = dataset
    ckpt, _ = checkpoint
    cfg = parse_config([f"ckpt={ckpt}", f"input={root}", override], tmp_path)
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(cfg)
