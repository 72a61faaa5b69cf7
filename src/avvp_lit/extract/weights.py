"""Where the extractors' weights come from, checked before anything is decoded.

Weights come only from the user's machine: a ``--weights DIR`` or the Hugging Face and
torch caches. Nothing is downloaded (``HF_HUB_OFFLINE=1`` is set before transformers is
imported). A missing file is one line saying where it goes and how to fetch it.

``--weights DIR`` layout (every entry optional; what is absent is looked up in the caches):

    DIR/clip-vit-large-patch14/        CLIPModel + CLIPProcessor (save_pretrained layout)
    DIR/630k-fusion-best.pt            laion-clap's fusion checkpoint
    DIR/r2plus1d_18-91a641e6.pth       torchvision's Kinetics-400 R(2+1)D-18
    DIR/huggingface/                   a Hugging Face hub cache (used as HF_HUB_CACHE) with
                                       roberta-base (model and tokenizer), bert-base-uncased
                                       and facebook/bart-base (tokenizers), which laion-clap
                                       loads by name when it is imported and built
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from avvp_lit.extract.recipe import CLAP_CHECKPOINT, CLIP_MODEL
from avvp_lit.utils.errors import InputError

CLIP_FOLDER = CLIP_MODEL.split("/")[-1]
R2PLUS1D_FILE = "r2plus1d_18-91a641e6.pth"
R2PLUS1D_URL = "https://download.pytorch.org/models/" + R2PLUS1D_FILE
CLAP_URL = "https://huggingface.co/lukewys/laion_clap/resolve/main/" + CLAP_CHECKPOINT
HF_FOLDER = "huggingface"
# what laion-clap 1.1.7 loads by name: training/data.py:44-46 at import (tokenizers) and
# clap_module/model.py:506 plus hook.py:62 when CLAP_Module is built (roberta-base)
CLAP_TEXT_FILES: dict[str, tuple[str, ...]] = {
    "roberta-base": ("config.json", "vocab.json", "merges.txt"),
    "bert-base-uncased": ("vocab.txt",),
    "facebook/bart-base": ("vocab.json", "merges.txt"),
}


class MissingWeights(InputError):
    """Weight files that are not on this machine; ``lines`` holds one line per file."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(
            f"{len(lines)} weight files missing (nothing is downloaded): " + "; ".join(lines)
        )
        self.lines = lines


def use_offline_hub(weights: Path | None) -> None:
    """Point the Hugging Face libraries at ``DIR/huggingface`` when it exists and forbid
    downloads, before transformers or laion-clap is imported. huggingface_hub reads both
    settings when it is imported; where something imported it already (a Hydra app does),
    its constants are set too, which its lookups read on every call."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    cache = Path(weights) / HF_FOLDER if weights is not None else None
    if cache is not None and cache.is_dir():
        os.environ["HF_HUB_CACHE"] = str(cache)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
        if cache is not None and cache.is_dir():
            constants.HF_HUB_CACHE = str(cache)


def _hub_file(repo: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


@dataclass(frozen=True)
class WeightPaths:
    """Resolved sources of every model: a folder or hub name for CLIP, files for the rest."""

    clip: str
    clap: Path
    r2plus1d: Path

    def identity(self) -> str:
        """Which weight files these are, cheaply: every file the three feature networks
        load (CLIP's folder, the CLAP checkpoint, R(2+1)D's file), by resolved path, size
        and modification time. Replacing, retraining or touching one changes it; the same
        files reached through links do not."""
        clip = Path(self.clip)
        if not clip.is_dir():
            found = _hub_file(self.clip, "config.json")
            clip = found.parent if found is not None else clip
        files = sorted(p for p in clip.iterdir() if p.is_file()) if clip.is_dir() else []
        digest = hashlib.sha256()
        for path in [*files, self.clap, self.r2plus1d]:
            real = Path(path).resolve()
            stat = real.stat()
            digest.update(f"{real}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]


def _torch_hub_file(name: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _laion_clap_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_weights(weights: Path | None) -> WeightPaths:
    """Every weight file the valor extractors need, or :class:`MissingWeights` listing each
    missing one with where it goes and how to fetch it."""
    root = Path(weights) if weights is not None else None
    missing: list[str] = []

    clip_dir = root / CLIP_FOLDER if root is not None else None
    if clip_dir is not None and (clip_dir / "config.json").is_file():
        clip = str(clip_dir)
    elif _hub_file(CLIP_MODEL, "config.json") is not None:
        clip = CLIP_MODEL
    else:
        clip = ""
        where = f"{clip_dir}" if clip_dir is not None else f"the Hugging Face cache {_hub_cache()}"
        missing.append(
            f"CLIP {CLIP_MODEL}: not in {where}; fetch: huggingface-cli download {CLIP_MODEL} "
            f"--local-dir {clip_dir or 'WEIGHTS/' + CLIP_FOLDER}"
        )

    clap_candidates = [root / CLAP_CHECKPOINT] if root is not None else []
    package = _laion_clap_dir()
    if package is not None:
        clap_candidates.append(package / CLAP_CHECKPOINT)
    clap = next((p for p in clap_candidates if p.is_file()), None)
    if clap is None:
        target = clap_candidates[0] if clap_candidates else Path("WEIGHTS") / CLAP_CHECKPOINT
        missing.append(
            f"CLAP {CLAP_CHECKPOINT}: not at {target}; fetch: wget {CLAP_URL} -P {target.parent}"
        )

    for repo, files in CLAP_TEXT_FILES.items():
        for name in files:
            if _hub_file(repo, name) is None:
                missing.append(
                    f"CLAP text side {repo}/{name} (laion-clap loads it by name): not in the "
                    f"Hugging Face cache {_hub_cache()}; fetch: huggingface-cli download {repo}"
                )
    if _hub_file("roberta-base", "model.safetensors") is None and (
        _hub_file("roberta-base", "pytorch_model.bin") is None
    ):
        missing.append(
            f"CLAP text side roberta-base/model.safetensors: not in the Hugging Face cache "
            f"{_hub_cache()}; fetch: huggingface-cli download roberta-base"
        )

    r21d_candidates = [root / R2PLUS1D_FILE] if root is not None else []
    r21d_candidates.append(_torch_hub_file(R2PLUS1D_FILE))
    r2plus1d = next((p for p in r21d_candidates if p.is_file()), None)
    if r2plus1d is None:
        target = r21d_candidates[0]
        missing.append(
            f"R(2+1)D-18 {R2PLUS1D_FILE}: not at {target}; fetch: wget {R2PLUS1D_URL} "
            f"-P {target.parent}"
        )
    if missing:
        raise MissingWeights(missing)
    return WeightPaths(clip=clip, clap=clap, r2plus1d=r2plus1d)
