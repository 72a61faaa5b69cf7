"""Randomly initialised extractors of the real classes, saved the way users' weights lie
on disk, and generated clips: what the tests (tiny models) and ``avvp-bench extract``
(full-size models: random weights time the same) run the real loading code on.

* CLIP: a small ``CLIPConfig`` (projection 768, as ViT-L/14's) with a byte-level tokenizer,
  saved with ``save_pretrained`` into ``WEIGHTS/clip-vit-large-patch14``;
* CLAP: laion-clap's own fusion ``CLAP_Module`` (HTS-AT tiny is the smallest audio model
  laion-clap builds) over a one-layer RoBERTa, saved as ``WEIGHTS/630k-fusion-best.pt``
  in the released checkpoint's form (``state_dict``, ``module.`` prefix, ``position_ids``);
  the RoBERTa and the three tokenizers laion-clap loads by name go into a Hugging Face hub
  cache at ``WEIGHTS/huggingface``;
* R(2+1)D-18: torchvision's network with random weights as ``WEIGHTS/r2plus1d_18-91a641e6.pth``.

huggingface_hub reads ``HF_HUB_CACHE`` when it is imported, so the caller points it at
``<folder>/huggingface`` first (:func:`avvp_lit.extract.weights.use_offline_hub`).
"""

from __future__ import annotations

import json
import math
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np

SNAPSHOT = "0" * 40
# ViT-L/14, as openai/clip-vit-large-patch14 (the benchmark); the tests' tower is tiny
CLIP_L14_VISION = {
    "image_size": 224,
    "patch_size": 14,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
}
TINY_VISION = {
    "image_size": 224,
    "patch_size": 32,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}


def _byte_chars() -> list[str]:
    """GPT-2's byte-to-unicode alphabet (what byte-level BPE tokenizers map bytes to)."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    visible += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in visible:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _write_bpe(folder: Path, specials: list[str], *, word_end: str = "") -> None:
    """A byte-level BPE vocabulary without merges: every byte is a token (and, for CLIP,
    every byte at a word's end)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = list(specials) + _byte_chars()
    if word_end:
        tokens += [c + word_end for c in _byte_chars()]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")


def _into_hub_cache(cache: Path, repo: str, folder: Path) -> None:
    """Place ``folder``'s files as the cached snapshot of ``repo`` (the layout
    huggingface_hub resolves offline)."""
    base = cache / f"models--{repo.replace('/', '--')}"
    snapshot = base / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():
        shutil.copy2(item, snapshot / item.name)
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / "main").write_text(SNAPSHOT)


def _clap_text_side(work: Path, cache: Path) -> None:
    import torch
    from transformers import (
        BartTokenizer,
        BertTokenizer,
        RobertaConfig,
        RobertaModel,
        RobertaTokenizer,
    )

    roberta = work / "roberta"
    _write_bpe(roberta, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer = RobertaTokenizer(str(roberta / "vocab.json"), str(roberta / "merges.txt"))
    torch.manual_seed(1)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,
        pad_token_id=tokenizer.pad_token_id,
    )
    RobertaModel(config).save_pretrained(roberta)
    tokenizer.save_pretrained(roberta)
    _into_hub_cache(cache, "roberta-base", roberta)

    bart = work / "bart"
    _write_bpe(bart, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    BartTokenizer(str(bart / "vocab.json"), str(bart / "merges.txt")).save_pretrained(bart)
    _into_hub_cache(cache, "facebook/bart-base", bart)

    bert = work / "bert"
    bert.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list(".,()'")
    (bert / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters]) + "\n"
    )
    BertTokenizer(str(bert / "vocab.txt")).save_pretrained(bert)
    _into_hub_cache(cache, "bert-base-uncased", bert)


def _clip(work: Path, weights: Path, vision: dict) -> None:
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    folder = weights / "clip-vit-large-patch14"
    vocab = work / "clip-tokenizer"
    _write_bpe(vocab, ["<|startoftext|>", "<|endoftext|>"], word_end="</w>")
    tokenizer = CLIPTokenizer(str(vocab / "vocab.json"), str(vocab / "merges.txt"))
    torch.manual_seed(2)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config=vision,
        projection_dim=768,
    )
    model = CLIPModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(2000.0))  # spreads random cosines over VALOR's thresholds
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)


def _clap(weights: Path) -> None:
    import laion_clap
    import torch

    torch.manual_seed(3)
    module = laion_clap.CLAP_Module(enable_fusion=True, device="cpu")
    with torch.no_grad():
        module.model.logit_scale_a.fill_(math.log(60.0))
    state = {f"module.{k}": v for k, v in module.model.state_dict().items()}
    state["module.text_branch.embeddings.position_ids"] = torch.arange(80).unsqueeze(0)
    torch.save({"epoch": 45, "state_dict": state}, weights / "630k-fusion-best.pt")


def _r2plus1d(weights: Path) -> None:
    import torch
    from torchvision.models.video import r2plus1d_18

    torch.manual_seed(4)
    torch.save(r2plus1d_18(weights=None).state_dict(), weights / "r2plus1d_18-91a641e6.pth")


def random_weights(weights: Path, *, full_size: bool = False) -> Path:
    """Build (once: ``.complete`` marks it) a ``--weights`` folder of random extractors:
    CLIP with a tiny or a ViT-L/14 image tower, laion-clap's HTS-AT tiny fusion CLAP over a
    one-layer RoBERTa, torchvision's R(2+1)D-18. ``HF_HUB_CACHE`` must already point at
    ``weights/huggingface``."""
    weights = Path(weights)
    done = weights / ".complete"
    if done.is_file():
        return weights
    shutil.rmtree(weights, ignore_errors=True)
    weights.mkdir(parents=True)
    work = weights / ".work"
    _clap_text_side(work, weights / "huggingface")
    _clip(work, weights, CLIP_L14_VISION if full_size else TINY_VISION)
    _clap(weights)
    _r2plus1d(weights)
    shutil.rmtree(work)
    done.write_text("ok")
    return weights


def write_video(
    path: Path,
    *,
    seconds: float = 10.0,
    fps: int = 16,
    size: tuple[int, int] = (96, 64),
    audio: bool = True,
    sample_rate: int = 44_100,
    tone_seconds: tuple[float, float] = (3.0, 6.0),
) -> Path:
    """A generated clip: a coloured background that changes hue each second, a white
    square moving left to right, and (with ``audio``) a 440 Hz stereo tone burst in
    ``tone_seconds`` over faint noise."""
    import av

    width, height = size
    frames = round(seconds * fps)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "18", "preset": "ultrafast"}
        if audio:
            sound = container.add_stream("aac", rate=sample_rate, layout="stereo")
        for i in range(frames):
            second = int(i / fps)
            image = np.zeros((height, width, 3), dtype=np.uint8)
            image[...] = ((40 * second) % 256, (90 + 25 * second) % 256, (200 - 15 * second) % 256)
            x = int((width - 16) * i / max(frames - 1, 1))
            image[height // 2 - 8 : height // 2 + 8, x : x + 16] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio:
            total = round(seconds * sample_rate)
            t = np.arange(total) / sample_rate
            wave = 0.01 * rng.standard_normal(total)
            burst = (t >= tone_seconds[0]) & (t < tone_seconds[1])
            wave[burst] += 0.5 * np.sin(2 * np.pi * 440 * t[burst])
            stereo = np.stack([wave, 0.8 * wave]).astype(np.float32)  # (2, S) planar
            step = 1024
            for start in range(0, total, step):
                chunk = np.ascontiguousarray(stereo[:, start : start + step])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate = sample_rate
                frame.pts = start
                frame.time_base = Fraction(1, sample_rate)
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path
