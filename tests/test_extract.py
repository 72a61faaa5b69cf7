"""avvp-extract: video files to VALOR's feature set, proven step by step against an
independent re-derivation of VALOR's and HAN's scripts on tiny random models of the same
classes (tests/helpers/extract_models.py), and used as a user would (CLI, bad input,
resume, avvp-data check, the training data module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp_lit.classes import CLASS_INDEX, CLASSES
from avvp_lit.extract.stand_ins import write_video

av = pytest.importorskip("av")

WEAK = "filename\tevent_labels\nclip_a\tSpeech,Dog,Cat,Car,Helicopter,Frying_(food)\n"


# --- the recipe's numbers, re-derived from the scripts' text -------------------------------
def test_frame_picks_chunks_and_thresholds_match_the_scripts():
    from avvp_lit.extract import recipe

    # np.round(np.linspace(0, N - 1, K)) over the 8-fps frames, half to even
    assert recipe.spread_indices(80, 10).tolist() == [0, 9, 18, 26, 35, 44, 53, 61, 70, 79]
    assert recipe.spread_indices(82, 10).tolist() == [0, 9, 18, 27, 36, 45, 54, 63, 72, 81]
    assert recipe.spread_indices(40, 80)[:6].tolist() == [0, 0, 1, 1, 2, 2]
    chunks = recipe.second_chunks(480_000)
    assert [c.start for c in chunks] == list(range(0, 480_000, 48_000))
    assert {c.stop - c.start for c in chunks} == {48_000}
    odd = recipe.second_chunks(240_007)
    assert odd[1].start == 24_001 and odd[1].stop - odd[1].start == 24_000
    by_class = dict(zip(CLASSES, recipe.CLIP_THRESHOLDS.tolist(), strict=True))
    assert (by_class["Speech"], by_class["Dog"], by_class["Acoustic_guitar"]) == (20, 14, 14)
    assert by_class["Helicopter"] == 16 and by_class["Clapping"] == 18
    by_class = dict(zip(CLASSES, recipe.CLAP_THRESHOLDS.tolist(), strict=True))
    assert (by_class["Frying_(food)"], by_class["Cat"], by_class["Acoustic_guitar"]) == (-2, 6, -1)
    assert recipe.CLIP_PROMPTS[CLASS_INDEX["Vacuum_cleaner"]] == "A photo of a vaccum cleaner."
    assert recipe.CLIP_PROMPTS[CLASS_INDEX["Acoustic_guitar"]] == "A photo of a acoustic guiter."
    assert recipe.CLAP_PROMPTS[CLASS_INDEX["Baby_cry_infant_cry"]] == (
        "This is a sound of baby cry, infant cry"
    )
    stretched = recipe.stretch_indices(240_000, 480_000)
    assert stretched[0] == 0 and stretched[-1] == 239_999 and stretched.size == 480_000


def test_pseudo_labels_keep_only_weak_classes_above_their_threshold():
    from avvp_lit.extract.recipe import segment_pseudo_labels

    thresholds = np.full(25, 15.0, dtype=np.float32)
    logits = np.full((10, 25), 15.0, dtype=np.float32)
    logits[3:, 0] = 15.5  # class 0 in the weak label, above from second 3
    logits[:, 1] = 99.0  # class 1 far above, but not in the weak label
    weak = np.zeros(25, dtype=np.float32)
    weak[0] = 1
    labels = segment_pseudo_labels(logits, thresholds, weak)
    assert labels.dtype == np.int64 and labels.shape == (10, 25)
    assert labels[:, 0].tolist() == [0, 0, 0] + [1] * 7  # strictly above: 15.0 is not
    assert labels[:, 1:].sum() == 0


# --- decoding ------------------------------------------------------------------------------
def test_decoding_gives_8_fps_frames_and_48_khz_mono_with_the_tone_where_it_was(tmp_path):
    from avvp_lit.extract.decode import decode_windows

    video = write_video(tmp_path / "clip.mp4", seconds=10, fps=16, tone_seconds=(3.0, 6.0))
    (window,) = decode_windows(video)
    assert window.id == "clip" and (window.start, window.end) == (0.0, 10.0)
    # 16 fps to 8: every second decoded frame, pixel for pixel
    with av.open(str(video)) as container:
        every = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert window.frames.shape == (80, 64, 96, 3)
    np.testing.assert_array_equal(window.frames, np.stack(every[::2]))
    # a one-window clip keeps all its samples, as librosa.load gives VALOR the whole clip
    # (this 10 s AAC clip decodes to a few hundred samples more than 480,000)
    assert window.audio.dtype == np.float32 and 480_000 <= window.audio.size < 481_000
    # independently: the decoder's float samples, channel mean, soxr's HQ resampling to
    # 48 kHz (librosa.load's steps); the project goes through 16-bit samples as
    # librosa's audioread fallback does, so they agree to the 16-bit step
    import soxr

    with av.open(str(video)) as container:
        planar = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
        rate = container.streams.audio[0].rate
    expected = soxr.resample(planar.mean(axis=0), rate, 48_000, quality="HQ")
    np.testing.assert_allclose(window.audio, expected, atol=2e-4)
    loudness = np.sqrt(np.square(window.audio[:480_000].reshape(10, -1)).mean(axis=1))
    # the burst (0.5 on the left, 0.4 on the right: mean 0.45, RMS 0.32) in seconds 3-5 only
    assert np.all(loudness[3:6] > 0.25) and np.all(np.delete(loudness, [3, 4, 5]) < 0.05)


def test_a_long_video_is_cut_into_windows_and_its_short_tail_kept(tmp_path):
    from avvp_lit.extract.decode import decode_windows

    video = write_video(tmp_path / "long.mp4", seconds=25, fps=8)
    windows = list(decode_windows(video))
    assert [w.id for w in windows] == ["long_0_10", "long_10_20", "long_20_25"]
    assert [len(w.frames) for w in windows] == [80, 80, 40]
    assert [w.audio.size for w in windows] == [480_000, 480_000, 240_000]
    # up to 11 s is one window of every frame; a shorter input one short window
    (nearly,) = decode_windows(write_video(tmp_path / "nearly.mp4", seconds=10.5, fps=8))
    assert nearly.id == "nearly" and len(nearly.frames) == 84 and nearly.end == 10.5
    (short,) = decode_windows(write_video(tmp_path / "short.mp4", seconds=4, fps=8))
    assert short.id == "short" and len(short.frames) == 32
    assert 4 * 48_000 <= short.audio.size < 4 * 48_000 + 2_048


# --- the features: equal to VALOR's and HAN's steps ----------------------------------------
@pytest.fixture(scope="module")
def extracted(tmp_path_factory, tiny_extractor_weights):
    """One 10-second clip extracted with weak labels (in-process, no worker)."""
    from avvp_lit.extract.pipeline import ExtractSettings, extract

    root = tmp_path_factory.mktemp("extract")
    video = write_video(root / "clip_a.mp4", seconds=10, fps=16, size=(80, 60))
    labels = root / "weak.csv"
    labels.write_text(WEAK)
    out = root / "out"
    result = extract(
        [video],
        out,
        ExtractSettings(labels=labels, workers=0),
        weights=tiny_extractor_weights,
        progress=False,
    )
    return video, out, result, tiny_extractor_weights


def _frames_at_8fps(video: Path) -> list[np.ndarray]:
    """The JPEG-free stand-in for VALOR's ffmpeg -r 8 frame folder: a 16-fps clip's every
    second frame."""
    with av.open(str(video)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][::2]


@pytest.mark.slow
def test_clip_features_and_visual_pseudo_labels_equal_valors_steps(extracted):
    from PIL import Image
    from torchvision import transforms
    from transformers import CLIPModel, CLIPProcessor

    video, out, _, weights = extracted
    folder = weights / "clip-vit-large-patch14"
    processor = CLIPProcessor.from_pretrained(folder)
    model = CLIPModel.from_pretrained(folder).eval()
    # VALOR utils/clip_preprocess.py:48-54, 63-71, 186-191
    transform = transforms.Compose(
        [
            transforms.ToTensor(),
            transforms.Resize((224, 224), antialias=False),
            transforms.Normalize(
                processor.image_processor.image_mean, processor.image_processor.image_std
            ),
        ]
    )
    images = _frames_at_8fps(video)
    samples = np.round(np.linspace(0, len(images) - 1, 10))
    frames = torch.stack(
        [transform(Image.fromarray(images[int(s)]).convert("RGB")) for s in samples]
    )
    with torch.no_grad():
        feats = model.get_image_features(pixel_values=frames)
        feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
        feats = feats / feats.norm(p=2, dim=-1, keepdim=True)
        captions = processor(
            text=list(_clip_captions()), images=None, return_tensors="pt", padding=True
        )
        logits = model(**captions, pixel_values=frames).logits_per_image  # (10, 25)
    np.testing.assert_allclose(np.load(out / "CLIP/features/clip_a.npy"), feats.numpy(), atol=1e-5)
    expected = _valor_pseudo_labels(
        logits,
        [
            20,
            15,
            18,
            14,
            15,
            18,
            18,
            15,
            15,
            15,
            15,
            18,
            15,
            15,
            15,
            15,
            15,
            15,
            15,
            16,
            14,
            15,
            15,
            15,
            18,
        ],
    )
    written = np.load(out / "CLIP/segment_pseudo_labels/clip_a.npy")
    assert written.dtype == np.int64
    np.testing.assert_array_equal(written, expected)
    assert 0 < written.sum() < written.size  # the thresholds cut somewhere, not everywhere


def _clip_captions() -> list[str]:
    things = (
        "people talking|a car|people cheering|a dog|a cat|frying food|people playing basketball"
        "|a fire alarm|a chainsaw|a cello|a banjo|people singing|a chicken or a rooster|a violin"
        "|a vaccum cleaner|a laughing baby|an accordion|a lawnmower|a motorcycle|a helicopter"
        "|a acoustic guiter|a ringing telephone|a crying baby|a blender|hands clapping"
    )
    return [f"A photo of {t}." for t in things.split("|")]


def _valor_pseudo_labels(logits: torch.Tensor, thresholds: list[int]) -> np.ndarray:
    """VALOR utils/clip_preprocess.py:106-125 (and clap_preprocess.py:121-140) on WEAK's classes."""
    weak = torch.zeros(25)
    for name in WEAK.splitlines()[1].split("\t")[1].split(","):
        weak[CLASS_INDEX[name]] = 1
    thr = torch.tensor(thresholds).unsqueeze(0).expand(10, -1)
    idx = weak.nonzero().squeeze(dim=-1)
    preds = torch.where(logits[:, idx] > thr[:, idx], 1, 0).long()
    labels = torch.zeros(10, 25).long()
    labels[:, idx] = preds
    return labels.numpy()


@pytest.mark.slow
def test_r2plus1d_features_equal_hans_steps(extracted):
    from PIL import Image
    from torch import nn
    from torchvision import transforms
    from torchvision.models.video import r2plus1d_18

    video, out, _, weights = extracted
    model = r2plus1d_18(weights=None)
    model.load_state_dict(torch.load(weights / "r2plus1d_18-91a641e6.pth", weights_only=True))
    model = nn.Sequential(*list(model.children())[:-1]).eval()  # HAN extract_3D_feat.py:78-84
    transform = transforms.Compose(  # HAN scripts/utils.py:36-52
        [
            transforms.Resize((112, 112)),
            transforms.ToTensor(),
            transforms.Normalize([0.43216, 0.394666, 0.37645], [0.22803, 0.22145, 0.216989]),
        ]
    )
    images = _frames_at_8fps(video)
    samples = np.round(np.linspace(0, len(images) - 1, 80))  # extract_3D_feat.py:36-47
    clips = torch.zeros((10, 3, 8, 112, 112))
    for i, sample in enumerate(samples):
        clips[i // 8, :, i % 8] = transform(Image.fromarray(images[int(sample)]).convert("RGB"))
    with torch.no_grad():
        expected = model(clips).squeeze().numpy()
    np.testing.assert_allclose(np.load(out / "feats/r2plus1d_18/clip_a.npy"), expected, atol=1e-5)


def _valor_log_mel(wave: np.ndarray) -> torch.Tensor:
    """laion-clap's get_mel (torchaudio MelSpectrogram + AmplitudeToDB), written with
    librosa as its own comment aligns them: (T, 64)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=wave,
        sr=48_000,
        n_fft=1024,
        hop_length=480,
        win_length=1024,
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=64,
        norm=None,
        htk=True,
        fmin=50,
        fmax=14_000,
    )
    return torch.from_numpy(10.0 * np.log10(np.maximum(mel, 1e-10))).float().T


def _int16_round_trip(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16) / np.float32(32767.0)


def _clap(weights: Path):
    import laion_clap

    module = laion_clap.CLAP_Module(enable_fusion=True, device="cpu")
    state = torch.load(weights / "630k-fusion-best.pt", weights_only=True)["state_dict"]
    state = {k[len("module.") :]: v for k, v in state.items()}
    del state["text_branch.embeddings.position_ids"]
    module.model.load_state_dict(state)
    module.model.eval()
    return module


@pytest.mark.slow
def test_clap_feature_map_and_audio_pseudo_labels_equal_valors_steps(extracted):
    from avvp_lit.extract.decode import waveform

    video, out, _, weights = extracted
    module = _clap(weights)
    htsat = module.model.audio_branch
    audio = waveform(video)  # librosa.load(path, sr=48000): decoding is tested above
    # VALOR utils/clap_preprocess.py:197-201, then clap_utils.py:205-270 (htsat_forward)
    samples = np.round(np.linspace(0, len(audio) - 1, 480_000)).astype(np.int32)
    wave = _int16_round_trip(audio[samples]).astype(np.float32)
    mel = _valor_log_mel(wave)
    with torch.no_grad():
        x = torch.stack([mel, mel, mel, mel], dim=0)[None]  # (1, 4, T, 64)
        x = x.transpose(1, 3)
        x = htsat.bn0(x)
        x = x.transpose(1, 3)
        x = htsat.reshape_wav2img(x)
        frames_num = x.shape[2]
        x = htsat.patch_embed(x, longer_idx=[])
        if htsat.ape:
            x = x + htsat.absolute_pos_embed
        x = htsat.pos_drop(x)
        for layer in htsat.layers:
            x, _ = layer(x)
        x = htsat.norm(x)
        b, n, c = x.shape
        sf = frames_num // (2 ** (len(htsat.depths) - 1)) // htsat.patch_stride[0]
        st = frames_num // (2 ** (len(htsat.depths) - 1)) // htsat.patch_stride[1]
        x = x.permute(0, 2, 1).contiguous().reshape(b, c, sf, st)
        b, c, f, t = x.shape
        c_freq_bin = f // htsat.freq_ratio
        x = x.reshape(b, c, f // c_freq_bin, c_freq_bin, t)
        x = x.permute(0, 1, 3, 2, 4).contiguous().reshape(b, c, c_freq_bin, -1)
        maps = torch.flatten(x, 2).permute(0, 2, 1)[0]  # (64, 768)
    written = np.load(out / "CLAP/features/clip_a.npy")
    assert written.shape == (64, 768)
    np.testing.assert_allclose(written, maps.numpy(), atol=1e-4, rtol=1e-4)

    # pseudo labels: ten one-second chunks (clap_preprocess.py:75-100), laion-clap's
    # quantisation and repeat padding, its audio embedding, exp(logit_scale_a) x cosine
    starts = np.round(np.linspace(0, audio.shape[0], 11)).astype(np.int32)
    step = audio.shape[0] // 10
    inputs = []
    for i in range(10):
        chunk = torch.from_numpy(_int16_round_trip(audio[starts[i] : starts[i] + step])).float()
        chunk = chunk.repeat(int(480_000 / len(chunk)))
        chunk = torch.nn.functional.pad(chunk, (0, 480_000 - len(chunk)))
        m = _valor_log_mel(chunk.numpy())
        inputs.append(
            {
                "mel_fusion": torch.stack([m, m, m, m]),
                "longer": torch.tensor([False]),
                "waveform": chunk,
            }
        )
    names = [n.replace("_", " ") for n in CLASSES]
    names = [
        {
            "Frying (food)": "Frying (food)",
            "Chicken rooster": "Chicken, rooster",
            "Baby cry infant cry": "Baby cry, infant cry",
        }.get(n, n)
        for n in names
    ]
    with torch.no_grad():
        audio_embeds = module.model.get_audio_embedding(inputs)
        text_embeds = module.get_text_embedding(
            ["This is a sound of " + n.lower() for n in names], use_tensor=True
        )
        scale, _ = module.model(None, None, "cpu")
        logits = scale * audio_embeds @ text_embeds.t()
    expected = _valor_pseudo_labels(
        logits, [0, 0, 1, 4, 6, -2, 4, 4, 2, 2, 2, 1, 2, 3, 0, 2, 2, 2, 0, 2, -1, 2, 3, 3, 0]
    )
    np.testing.assert_array_equal(np.load(out / "CLAP/segment_pseudo_labels/clip_a.npy"), expected)


# --- as a user runs it ---------------------------------------------------------------------
def _cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "avvp_lit.cli.extract", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        **kwargs,
    )


@pytest.mark.slow
def test_cli_extracts_windows_skips_bad_files_resumes_and_passes_the_data_check(
    tmp_path, tiny_extractor_weights
):
    from avvp_lit.data.stores import open_store
    from avvp_lit.engine.parsing import parse_videos
    from tests.helpers.tiny import TinyNet
    from tests.test_parse import parse_config, write_checkpoint

    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "long.mp4", seconds=25, fps=8)
    write_video(videos / "silent.mp4", seconds=4, audio=False)
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "broken.mp4").write_bytes(b"\x00not a video" * 100)
    labels = tmp_path / "weak.csv"
    labels.write_text("filename\tevent_labels\nlong_0_10\tSpeech\nlong_10_20\tCar,Dog\n")
    out = tmp_path / "out"
    args = [str(videos), "--out", str(out), "--labels", str(labels)]
    args += ["--weights", str(tiny_extractor_weights), "--batch", "2"]
    run = _cli(args)
    assert run.returncode == 0, run.stderr
    ids = ["long_0_10", "long_10_20", "long_20_25"]
    for folder in ("CLIP/features", "CLAP/features", "feats/r2plus1d_18"):
        assert sorted(p.stem for p in (out / folder).glob("*.npy")) == ids
    assert not list(out.rglob(".*.tmp-*"))
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert len(skipped) == 3
    assert any("silent.mp4: no audio stream" in s for s in skipped)
    assert any("empty.mp4: empty file" in s for s in skipped)
    assert any("broken.mp4: cannot be opened" in s for s in skipped)
    windows = (out / "windows.tsv").read_text().splitlines()
    assert windows[-1].split("\t")[0] == "long_20_25" and windows[-1].endswith("stretched")
    assert "long_20_25" in run.stdout  # the no-weak-label window is named in the summary

    # the store checks and the data module reads it (as avvp-train would)
    for split, video in (
        ("train", "long_0_10"),
        ("val_pd", "long_10_20"),
        ("test_pd", "long_20_25"),
    ):
        (out / f"AVVP_{split}.csv").write_text(f"filename\tevent_labels\n{video}\tSpeech\n")
    check = subprocess.run(
        [sys.executable, "-m", "avvp_lit.cli.data", "check", str(out)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    store = open_store(out, "valor")  # the store avvp-train's data module and avvp-parse open
    arrays = store.read("long_20_25")
    assert arrays["audio"].shape == (64, 768) and arrays["pl_visual"].shape == (10, 25)

    # avvp-parse reads the folder as it is (a tiny network of the valor inputs)
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", TinyNet("valor"))
    summary = parse_videos(
        parse_config([f"ckpt={ckpt}", f"input={out}", "split=test"], tmp_path / "parsed")
    )
    assert summary["feature_set"] == "valor" and not summary["skipped"]
    parsed = [json.loads(line)["filename"] for line in (tmp_path / "parsed/events.jsonl").open()]
    assert parsed == ["long_20_25"]

    # --resume does nothing for finished videos; without it they are extracted again
    before = (out / "CLIP/features/long_0_10.npy").stat().st_mtime_ns
    again = _cli([*args, "--resume"])
    assert again.returncode == 0, again.stderr
    assert (out / "CLIP/features/long_0_10.npy").stat().st_mtime_ns == before
    assert "already done" in again.stdout


@pytest.mark.slow
def test_h5_format_writes_one_store_the_data_layer_reads(tmp_path, tiny_extractor_weights):
    from avvp_lit.data.stores import open_store

    write_video(tmp_path / "short.mp4", seconds=3)
    labels = tmp_path / "weak.csv"
    labels.write_text("filename\tevent_labels\nshort\tSpeech\n")
    out = tmp_path / "out"
    args = [str(tmp_path / "short.mp4"), "--out", str(out), "--format", "h5"]
    run = _cli([*args, "--labels", str(labels), "--weights", str(tiny_extractor_weights)])
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["features.h5", "skipped.txt", "windows.tsv"]
    arrays = open_store(out, "valor", "h5").read("short")
    assert arrays["visual"].shape == (10, 768) and arrays["pl_audio"].shape == (10, 25)
    assert "stretched" in (out / "windows.tsv").read_text()  # 3 s over 10 segments
    no_labels = _cli([*args, "--weights", str(tiny_extractor_weights)])
    assert no_labels.returncode == 2 and "give --labels" in no_labels.stderr


def test_missing_weights_are_one_line_each_with_where_and_how(tmp_path):
    write_video(tmp_path / "a.mp4", seconds=2)
    run = _cli(
        [str(tmp_path / "a.mp4"), "--out", str(tmp_path / "out"), "--weights", str(tmp_path)]
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert any(
        "clip-vit-large-patch14" in line and "huggingface-cli download" in line for line in lines
    )
    assert any("630k-fusion-best.pt" in line and "wget" in line for line in lines)
    assert any("r2plus1d_18-91a641e6.pth" in line for line in lines)
    assert all(line.startswith("avvp-extract: missing weights: ") for line in lines)
    assert not (tmp_path / "out").exists()


def test_inputs_of_one_name_are_refused_before_decoding(tmp_path):
    from avvp_lit.extract.pipeline import ExtractSettings, extract
    from avvp_lit.utils.errors import InputError

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_video(tmp_path / folder / "clip.mp4", seconds=2)
    with pytest.raises(InputError, match=r"'clip': \S+/a/clip.mp4, \S+/b/clip.mp4"):
        extract([tmp_path / "a", tmp_path / "b"], tmp_path / "out", ExtractSettings())
    assert not (tmp_path / "out").exists()
