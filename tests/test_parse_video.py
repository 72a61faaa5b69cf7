"""avvp-parse on video files: windows joined on the video's time axis, the extraction
cache, the same events as parsing the features avvp-extract wrote, bad input, and the
events page read in a real browser (headless Chromium)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from avvp_lit.classes import CLASS_INDEX
from avvp_lit.engine.parsing import join_windows

K = CLASS_INDEX["Dog"]


def _windows(count: int) -> tuple[np.ndarray, ...]:
    shape = (count, 10, 25)
    return np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape), np.zeros(shape)


def _audio_events(events) -> list[tuple[float, float]]:
    return [
        (float(on), float(off))
        for m, on, off in zip(events.modality, events.onset, events.offset, strict=True)
        if m == 0
    ]


def test_an_event_crossing_one_border_is_one_event():
    pa, pv, qa, qv = _windows(2)
    pa[0, 8:, K] = pa[1, :3, K] = True
    qa[0, 8:, K], qa[1, :3, K] = 0.9, 0.6
    events, bounds = join_windows(pa, pv, qa, qv, np.array([0, 10]), np.array([10, 20]))
    assert _audio_events(events) == [(8.0, 13.0)]
    assert events.score[0] == pytest.approx((2 * 0.9 + 3 * 0.6) / 5)
    assert bounds.tolist() == list(range(21))


def test_an_event_crossing_two_borders_and_one_ending_at_a_border():
    pa, pv, qa, qv = _windows(3)
    pa[0, 9, K] = pa[1, :, K] = pa[2, :1, K] = True
    other = CLASS_INDEX["Car"]
    pa[0, 5:, other] = True  # ends exactly at the first border
    pa[1, 0:2, CLASS_INDEX["Cat"]] = True  # starts exactly at it
    events, _ = join_windows(pa, pv, qa, qv, np.array([0, 10, 20]), np.array([10, 20, 30]))
    by_class = {
        int(label): (float(on), float(off))
        for label, on, off in zip(events.label, events.onset, events.offset, strict=True)
    }
    assert by_class == {K: (9.0, 21.0), other: (5.0, 10.0), CLASS_INDEX["Cat"]: (10.0, 12.0)}


def test_a_25_second_video_spreads_its_short_tail_over_ten_segments():
    pa, pv, qa, qv = _windows(3)
    pv[1, 9, K] = pv[2, :4, K] = True  # visible from 19 s into the tail's first 2 s
    pa[2, 6:, K] = True  # audible in the tail's last 2 s
    events, bounds = join_windows(pa, pv, qa, qv, np.array([0, 10, 20]), np.array([10, 20, 25]))
    assert bounds[20:].tolist() == [
        20.0,
        20.5,
        21.0,
        21.5,
        22.0,
        22.5,
        23.0,
        23.5,
        24.0,
        24.5,
        25.0,
    ]
    spans = {
        (int(m), float(on), float(off))
        for m, on, off in zip(events.modality, events.onset, events.offset, strict=True)
    }
    assert spans == {(1, 19.0, 22.0), (0, 23.0, 25.0)}


# --- end to end --------------------------------------------------------------------------
WINDOW_LABELS = {"walk_0_10": "Dog", "walk_10_20": "Dog,Speech", "walk_20_25": "Speech"}


def _labelled_dataset(root: Path, video: Path, weights: Path) -> Path:
    """An LLP-layout dataset of what the tiny extractor makes of ``video`` (its three
    windows, with pseudo labels): every window trains, one validates and one tests (the
    annotation files in the released formats). Each extracted window costs seconds of
    R(2+1)D-18 on one core, so the splits share windows."""
    from avvp_lit.extract.pipeline import ExtractSettings, extract
    from tests.helpers.datasets import HEADER_DENSE, HEADER_WEAK

    dataset = root / "dataset"
    dataset.mkdir()
    weak = {split: HEADER_WEAK for split in ("train", "val_pd", "test_pd")}
    weak["train"] += "".join(f"{n}\t{c}\n" for n, c in WINDOW_LABELS.items())
    weak["val_pd"] += "walk_10_20\tDog,Speech\n"
    weak["test_pd"] += "walk_20_25\tSpeech\n"
    for split, text in weak.items():
        (dataset / f"AVVP_{split}.csv").write_text(text)
    dense = HEADER_DENSE + "walk_10_20\t0\t6\tDog\nwalk_10_20\t4\t10\tSpeech\n"
    dense += "walk_20_25\t2\t9\tSpeech\n"
    for name in ("AVVP_eval_audio.csv", "AVVP_eval_audio_pre2024.csv", "AVVP_eval_visual.csv"):
        (dataset / name).write_text(dense)
    extract(
        [video],
        dataset,
        ExtractSettings(labels=dataset / "AVVP_train.csv", workers=0),
        weights=weights,
        progress=False,
    )
    return dataset


@pytest.fixture(scope="module")
def parsed_video(tmp_path_factory, tiny_extractor_weights, data_dir):
    """A smoke checkpoint of MM-CSE trained by avvp-train on what the tiny extractor made
    of a 25-second clip; the clip parsed with it from the .mp4, and from the features
    avvp-extract wrote for it."""
    import warnings

    from avvp_lit.engine.parsing import parse_videos
    from avvp_lit.engine.tasks import train_and_test
    from avvp_lit.extract.stand_ins import write_video
    from tests.helpers.training import run_config
    from tests.test_parse import parse_config

    root = tmp_path_factory.mktemp("parse_video")
    videos = root / "videos"
    videos.mkdir()
    video = write_video(videos / "walk.mp4", seconds=25, fps=8, size=(80, 60))
    write_video(videos / "mute.mp4", seconds=3, audio=False)
    (videos / "broken.mp4").write_bytes(b"\x00" * 512)
    dataset = _labelled_dataset(root, video, tiny_extractor_weights)
    run = root / "train"
    overrides = [
        "experiment=smoke",
        "data=llp_valor",
        f"data.root={dataset}",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.in_memory=true",
        "model.num_layers=1",
        "trainer.max_epochs=6",  # one step an epoch: enough to learn the clip's classes
        "optimizer.lr=3e-3",
        "logger=csv",
        "callbacks.dashboard=null",
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*videos are in both the")
        train_and_test(run_config("train", overrides, run, data_dir))
    (ckpt,) = (run / "checkpoints").glob("epoch_*.ckpt")
    common = [
        f"ckpt={ckpt}",
        f"weights={tiny_extractor_weights}",
        f"extract_cache={root / 'cache'}",
    ]
    summary = parse_videos(parse_config([*common, f"input={videos}"], root / "from_video"))
    again = parse_videos(parse_config([*common, f"input={video}"], root / "again"))
    from_features = parse_videos(
        parse_config([f"ckpt={ckpt}", f"input={dataset}", "split=train"], root / "from_features")
    )
    return root, video, summary, again, from_features


@pytest.mark.slow
def test_parsing_the_mp4_gives_the_events_of_its_extracted_features(parsed_video):
    from avvp_lit.extract.pipeline import cached_windows

    root, video, summary, again, from_features = parsed_video
    assert summary["mode"] == "video" and summary["parsed"] == 1 and summary["extracted"] == 3
    assert set(summary["skipped"]) == {"mute", "broken"}
    assert "no audio stream" in summary["skipped"]["mute"]
    assert again["extracted"] == 0  # the same file, settings and weights: from the cache
    # the features' per-window events, laid on the video's time axis by hand
    windows = cached_windows(root / "dataset")
    assert len(windows) == 3
    records = {
        json.loads(line)["filename"]: json.loads(line)["events"]
        for line in (root / "from_features/events.jsonl").open()
    }
    expected = []
    for name, start, end in windows:
        scale = (end - start) / 10
        for e in records[name]:
            expected.append(
                (e["class"], e["modality"], start + e["onset"] * scale, start + e["offset"] * scale)
            )
    (record,) = [json.loads(line) for line in (root / "from_video/events.jsonl").open()]
    assert record["filename"] == "walk"
    got = sorted((e["class"], e["modality"], e["onset"], e["offset"]) for e in record["events"])
    # events ending at one window's end and starting at the next one's are joined
    merged: list[tuple] = []
    for item in sorted(expected, key=lambda e: (e[0], e[1], e[2])):
        if merged and merged[-1][:2] == item[:2] and merged[-1][3] == item[2]:
            merged[-1] = (*item[:2], merged[-1][2], item[3])
        else:
            merged.append(item)
    assert got == sorted(merged)
    assert len(got) > 0
    assert from_features["parsed"] == len(WINDOW_LABELS)


def test_a_han_checkpoint_on_video_input_is_a_named_error_before_decoding(tmp_path):
    from avvp_lit.engine.parsing import parse_videos
    from avvp_lit.extract.stand_ins import write_video
    from avvp_lit.utils.errors import ConfigError
    from tests.helpers.tiny import TinyNet
    from tests.test_parse import parse_config, write_checkpoint

    video = write_video(tmp_path / "a.mp4", seconds=2)
    ckpt = write_checkpoint(tmp_path / "han.ckpt", TinyNet("han"))
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError, match="reads 'han' features"):
        parse_videos(
            parse_config(
                [f"ckpt={ckpt}", f"input={video}", f"extract_cache={cache}"], tmp_path / "o"
            )
        )
    assert not cache.exists()


@pytest.mark.slow
def test_the_command_a_new_user_types(tmp_path, tiny_extractor_weights):
    """avvp-parse ckpt=... input=my_video.mp4 in a fresh process whose Hugging Face cache
    is not the weights' (the weights folder's huggingface/ must be found on its own), then
    outputs/parse/latest/events.html with the video beside it."""
    import subprocess
    import sys

    import torch

    from avvp_lit.extract.stand_ins import write_video
    from tests.helpers import REPO
    from tests.helpers.tiny import TinyNet
    from tests.test_parse import write_checkpoint

    write_video(tmp_path / "my_video.mp4", seconds=3)
    torch.manual_seed(2)
    ckpt = write_checkpoint(tmp_path / "best.ckpt", TinyNet("valor"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["PYTHONPATH"] = str(REPO)
    run = subprocess.run(
        [
            sys.executable, "-m", "avvp_lit.cli.parse", f"ckpt={ckpt}", "input=my_video.mp4",
            f"weights={tiny_extractor_weights}", f"extract_cache={tmp_path / 'cache'}",
            "trusted_blocks=[tests.helpers.tiny.TinyNet]",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    page = tmp_path / "outputs/parse/latest/events.html"
    assert page.is_file()
    assert (page.parent / "videos/my_video.mp4").resolve() == (tmp_path / "my_video.mp4").resolve()
    assert json.loads((page.parent / "summary.json").read_text())["parsed"] == 1


def test_names_are_stems_unless_stems_repeat(tmp_path):
    from avvp_lit.engine.video_input import input_names

    files = [tmp_path / "a/clip.mp4", tmp_path / "b/clip.mp4", tmp_path / "b/walk.mkv"]
    assert list(input_names(files).values()) == [
        ("a/clip.mp4", "a/clip.mp4"),
        ("b/clip.mp4", "b/clip.mp4"),
        ("walk", "walk.mkv"),
    ]


def test_the_weights_identity_follows_the_files_not_the_links(tmp_path):
    from avvp_lit.extract.weights import WeightPaths

    clip = tmp_path / "clip"
    clip.mkdir()
    (clip / "config.json").write_text("{}")
    (tmp_path / "clap.pt").write_bytes(b"1")
    (tmp_path / "r21d.pth").write_bytes(b"2")
    paths = WeightPaths(str(clip), tmp_path / "clap.pt", tmp_path / "r21d.pth")
    before = paths.identity()
    linked = tmp_path / "linked"
    linked.mkdir()
    for name in ("clip", "clap.pt", "r21d.pth"):
        (linked / name).symlink_to(tmp_path / name)
    assert WeightPaths(
        str(linked / "clip"), linked / "clap.pt", linked / "r21d.pth"
    ).identity() == (before)
    (tmp_path / "r21d.pth").write_bytes(b"22")  # retrained: another file of the same name
    assert paths.identity() != before
    changed = paths.identity()
    os.utime(clip / "config.json", ns=(1, 1))
    assert paths.identity() != changed


@pytest.mark.slow
def test_same_stems_parse_apart_and_new_weights_extract_again(
    tmp_path, tiny_extractor_weights, monkeypatch
):
    """a/clip.mp4 and b/clip.mp4 are two videos (and a list naming one twice parses it
    once); the same videos with another R(2+1)D file are extracted again, not read from
    the cache entries of the first weights."""
    from huggingface_hub import constants

    from avvp_lit.engine.parsing import parse_videos
    from avvp_lit.extract.stand_ins import write_video
    from avvp_lit.extract.weights import R2PLUS1D_FILE
    from tests.helpers.tiny import TinyNet
    from tests.test_parse import parse_config, write_checkpoint

    monkeypatch.setenv("HF_HUB_CACHE", os.environ["HF_HUB_CACHE"])  # restored afterwards
    monkeypatch.setattr(constants, "HF_HUB_CACHE", constants.HF_HUB_CACHE)
    for folder, size in (("a", (64, 48)), ("b", (48, 64))):
        (tmp_path / folder).mkdir()
        write_video(tmp_path / folder / "clip.mp4", seconds=2, size=size)
    listing = tmp_path / "videos.txt"
    listing.write_text("a/clip.mp4\nb/clip.mp4\n# twice:\n./a/clip.mp4\n")
    ckpt = write_checkpoint(tmp_path / "v.ckpt", TinyNet("valor"))
    cache = tmp_path / "cache"

    def parse(source: Path, weights: Path, out: str) -> dict:
        overrides = [f"ckpt={ckpt}", f"input={source}", f"weights={weights}"]
        return parse_videos(parse_config([*overrides, f"extract_cache={cache}"], tmp_path / out))

    first = parse(listing, tiny_extractor_weights, "first")
    assert (first["videos"], first["parsed"], first["extracted"]) == (2, 2, 2)
    names = [json.loads(line)["filename"] for line in (tmp_path / "first/events.jsonl").open()]
    assert names == ["a/clip.mp4", "b/clip.mp4"]
    for name in names:
        assert (tmp_path / "first/videos" / name).resolve() == (tmp_path / name).resolve()
    windows = {
        p.name for p in cache.glob("*/CLIP/features/*.npy")
    }  # named after the cache entries, so the two clips' arrays do not clash
    assert len(windows) == 2

    retrained = tmp_path / "retrained"
    retrained.mkdir()
    for item in tiny_extractor_weights.iterdir():
        if item.name == R2PLUS1D_FILE:
            shutil.copyfile(item, retrained / item.name)
        else:
            (retrained / item.name).symlink_to(item)
    one = tmp_path / "a/clip.mp4"  # each window costs seconds of R(2+1)D: one video will do
    second = parse(one, retrained, "second")
    assert second["extracted"] == 1 and second["weights"] != first["weights"]
    assert parse(one, tiny_extractor_weights, "third")["extracted"] == 0


def test_an_empty_folder_is_a_named_error(tmp_path):
    from avvp_lit.engine.parsing import parse_videos
    from avvp_lit.utils.errors import InputError
    from tests.helpers.tiny import TinyNet
    from tests.test_parse import parse_config, write_checkpoint

    ckpt = write_checkpoint(tmp_path / "v.ckpt", TinyNet("valor"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        parse_videos(parse_config([f"ckpt={ckpt}", f"input={tmp_path / 'empty'}"], tmp_path / "o"))


# --- the page, in a real browser -----------------------------------------------------------
def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip(
            "headless Chromium is not installed: apt-get install chromium chromium-driver "
            "(make test installs them where apt-get can)"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.mark.slow
def test_the_page_shows_the_events_on_the_video_in_chromium(parsed_video):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    root, _, _, _, _ = parsed_video
    page = root / "from_video/events.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing fetched from a network
    with open(root / "from_video/events.csv") as handle:
        rows = list(csv.DictReader(handle))
    browser = _browser()
    try:
        browser.get(page.as_uri())
        bars = browser.find_elements(By.CSS_SELECTOR, ".event")
        assert len(bars) == len(rows)
        assert browser.execute_script(  # the long checkpoint path wraps inside the sidebar
            "const side = document.querySelector('#side header');"
            "return side.scrollWidth <= side.clientWidth"
        )
        shown = sorted(
            (
                b.get_attribute("data-cls"),
                b.get_attribute("data-modality"),
                float(b.get_attribute("data-onset")),
            )
            for b in bars
        )
        assert shown == sorted((r["class"], r["modality"], float(r["onset"])) for r in rows)
        assert (
            browser.find_element(By.ID, "player").get_attribute("src").endswith("videos/walk.mp4")
        )
        duration = browser.execute_script("return document.getElementById('player').duration")
        assert duration == pytest.approx(25, abs=0.2)  # the linked video loaded
        WebDriverWait(browser, 20).until(
            lambda b: b.execute_script("return document.getElementById('player').readyState") >= 1
        )
        latest = max(bars, key=lambda b: float(b.get_attribute("data-onset")))
        away = float(latest.get_attribute("data-onset")) + 7.5  # somewhere else first
        browser.execute_script(f"document.getElementById('player').currentTime = {away}")
        WebDriverWait(browser, 10).until(
            lambda b: (
                b.execute_script("return document.getElementById('player').currentTime")
                == pytest.approx(away, abs=0.05)
            )
        )
        latest.click()
        position = browser.execute_script("return document.getElementById('player').currentTime")
        assert position == pytest.approx(float(latest.get_attribute("data-onset")), abs=0.05)
        head = browser.find_element(By.ID, "playhead")
        assert float(head.get_attribute("data-time")) == pytest.approx(position, abs=0.05)
        WebDriverWait(browser, 10).until(  # the frame sought to is decoded
            lambda b: b.execute_script(
                "return !document.getElementById('player').seeking"
                " && document.getElementById('player').readyState >= 4"
            )
        )
        time.sleep(2)  # Chromium's controls draw a loading spinner for a while after a seek
        shot = Path(os.environ.get("AVVP_SCREENSHOTS", root)) / "events_page.png"
        assert browser.save_screenshot(str(shot))  # looked at by the developer

        # feature input: the same lanes, no player
        browser.get((root / "from_features/events.html").as_uri())
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "title"))
        assert not browser.find_elements(By.TAG_NAME, "video")
        with open(root / "from_features/events.csv") as handle:
            first = next(csv.DictReader(handle))["filename"]
        shown = browser.find_elements(By.CSS_SELECTOR, ".event")
        assert shown and browser.find_element(By.ID, "title").text == first

        # 1,000 videos: a list to pick from and one player, drawn for the video picked
        many = root / "many.html"
        many.write_text(_many_videos_page(1000))
        browser.get(many.as_uri())
        WebDriverWait(browser, 30).until(
            lambda b: len(b.find_elements(By.CSS_SELECTOR, "#list li"))
        )
        items = browser.find_elements(By.CSS_SELECTOR, "#list li")
        assert len(items) == 1000 and len(browser.find_elements(By.TAG_NAME, "video")) == 1
        items[737].click()
        assert browser.find_element(By.ID, "title").text == "clip0737"
        assert browser.find_element(By.ID, "player").get_attribute("src").endswith("clip0737.mp4")
    finally:
        browser.quit()


def _many_videos_page(count: int) -> str:
    from avvp_lit.viz.events_page import PageVideo, events_page

    rng = np.random.default_rng(0)
    videos = [
        PageVideo(
            f"clip{i:04d}",
            np.arange(11, dtype=float),
            rng.random((10, 25)),
            rng.random((10, 25)),
            [{"class": "Dog", "modality": "audio", "onset": 2, "offset": 5, "score": 0.7}],
            video=f"videos/clip{i:04d}.mp4",
        )
        for i in range(count)
    ]
    return events_page(videos, model="m", checkpoint="c.ckpt", protocol={"gating": "global"})
