"""The three pretrained networks VALOR's feature set comes from, loaded by their own
libraries, each returning per-second arrays for a batch of windows.

CLIP through transformers' ``CLIPModel``, CLAP through laion-clap's ``CLAP_Module`` (the
package VALOR used), R(2+1)D-18 through torchvision. Checkpoints are read with
``torch.load(weights_only=True)``; from_pretrained folders with ``local_files_only``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avvp_lit.extract.recipe import CLAP_AUDIO_MODEL, CLAP_PROMPTS, CLIP_PROMPTS
from avvp_lit.utils.errors import InputError


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``bf16-mixed``, nothing for ``32``."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(p=2, dim=-1, keepdim=True)


def _tensor(output: object) -> torch.Tensor:
    """transformers returns a tensor from get_*_features, or (newer releases) an output
    whose pooled projection is ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipImages:
    """CLIP ViT-L/14 image embeddings per frame, L2-normalised (VALOR
    utils/clip_preprocess.py:186-191), and VALOR's ``logits_per_image`` against its 25
    prompts (:81-103): exp(logit_scale) x cosine of the two normalised embeddings."""

    def __init__(self, source: str, *, device: torch.device, precision: str = "32") -> None:
        from transformers import CLIPModel, CLIPProcessor

        self.device, self.precision = device, precision
        self.model = CLIPModel.from_pretrained(source, local_files_only=True).eval().to(device)
        self.processor = CLIPProcessor.from_pretrained(source, local_files_only=True)
        self.mean = tuple(float(v) for v in self.processor.image_processor.image_mean)
        self.std = tuple(float(v) for v in self.processor.image_processor.image_std)
        text = self.processor(text=list(CLIP_PROMPTS), return_tensors="pt", padding=True)
        with torch.no_grad():
            self.prompts = _unit(
                _tensor(self.model.get_text_features(**text.to(device))).float()
            )  # (25, D)
        self.scale = float(self.model.logit_scale.detach().exp())

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """pixels (F, 3, 224, 224) -> features (F, D) float32 and logits (F, 25)."""
        with autocast(self.device, self.precision):
            embeds = _tensor(self.model.get_image_features(pixel_values=pixels.to(self.device)))
        features = _unit(embeds.float())
        logits = self.scale * features @ self.prompts.T
        return features.cpu().numpy(), logits.cpu().numpy()


class R2Plus1D:
    """torchvision's Kinetics-400 R(2+1)D-18 without its classifier (HAN
    scripts/extract_3D_feat.py:78-84): the 512-d global average pool per 8-frame clip."""

    def __init__(self, checkpoint: Path, *, device: torch.device, precision: str = "32") -> None:
        from torchvision.models.video import r2plus1d_18

        self.device, self.precision = device, precision
        model = r2plus1d_18(weights=None)
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.fc = nn.Identity()
        # channels-last 3D convolutions: 2.35 s against 2.83 s for 10 clips on two CPU
        # cores (interleaved, best of 3), outputs within 6e-7 of the default layout
        self.model = model.eval().to(device, memory_format=torch.channels_last_3d)

    @torch.no_grad()
    def __call__(self, clips: torch.Tensor) -> np.ndarray:
        """clips (C, 3, 8, 112, 112) -> (C, 512) float32."""
        clips = clips.to(self.device).contiguous(memory_format=torch.channels_last_3d)
        with autocast(self.device, self.precision):
            out = self.model(clips)
        return out.float().cpu().numpy()


def clap_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """laion-clap's checkpoint as its ``load_ckpt`` prepares it (clap_module/factory.py,
    load_state_dict), read with ``weights_only=True``: the ``state_dict`` entry, without a
    ``module.`` prefix and without the text branch's ``position_ids`` buffer that
    transformers >= 4.31 no longer has."""
    try:
        loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:
        raise InputError(
            f"{checkpoint}: not a tensor-only checkpoint ({str(error).splitlines()[0]})"
        ) from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state.pop("text_branch.embeddings.position_ids", None)
    return state


class ClapAudio:
    """laion-clap's fusion CLAP (HTS-AT tiny + RoBERTa) as VALOR uses it.

    ``feature_maps``: the HTS-AT token map before its average pool, (64, 768) per window
    (VALOR utils/clap_utils.py:219-270: the final norm's output regrouped as HTS-AT does,
    taken here as the input of ``audio_branch.avgpool``). ``logits``: exp(logit_scale_a) x
    cosine of the projected audio and text embeddings (utils/clap_preprocess.py:103-118).
    The log-mel input is torchaudio's ``MelSpectrogram`` + ``AmplitudeToDB`` as laion-clap's
    get_mel computes it, with librosa's HTK filterbank (torchaudio has no build beside this
    torch).
    """

    def __init__(self, checkpoint: Path, *, device: torch.device, precision: str = "32") -> None:
        import laion_clap
        import librosa

        self.device, self.precision = device, precision
        module = laion_clap.CLAP_Module(enable_fusion=True, device=device, amodel=CLAP_AUDIO_MODEL)
        module.model.load_state_dict(clap_state_dict(checkpoint))
        self.model = module.model.eval()
        cfg = module.model_cfg["audio_cfg"]
        self.cfg = cfg
        basis = librosa.filters.mel(
            sr=cfg["sample_rate"],
            n_fft=cfg["window_size"],
            n_mels=cfg["mel_bins"],
            fmin=cfg["fmin"],
            fmax=cfg["fmax"],
            htk=True,
            norm=None,
        )
        self.mel_basis = torch.from_numpy(basis).float().to(device)  # (64, 513)
        self.window = torch.hann_window(cfg["window_size"], device=device)
        with torch.no_grad():
            text = module.get_text_embedding(list(CLAP_PROMPTS), use_tensor=True)
        self.prompts = text.float().to(device)  # (25, 512), unit norm
        self.scale = float(self.model.logit_scale_a.detach().exp())
        self._maps: list[torch.Tensor] = []
        self.model.audio_branch.avgpool.register_forward_hook(self._keep_first_pool_input)

    def _keep_first_pool_input(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if not self._maps:
            self._maps.append(args[0])

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, S) -> (B, T, 64) dB power mel spectrogram (T = S // hop + 1)."""
        spec = torch.stft(
            waveforms,
            n_fft=self.cfg["window_size"],
            hop_length=self.cfg["hop_size"],
            win_length=self.cfg["window_size"],
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.abs().pow(2.0)  # (B, 513, T)
        mel = torch.matmul(self.mel_basis, power)  # (B, 64, T)
        return (10.0 * torch.log10(torch.clamp(mel, min=1e-10))).transpose(1, 2)

    def _audio_input(self, waveforms: np.ndarray) -> dict[str, torch.Tensor]:
        """What laion-clap's get_audio_features gives a 480,000-sample clip: the log-mel
        four times (mel_fusion) and longer = False."""
        wave = torch.from_numpy(np.ascontiguousarray(waveforms)).float().to(self.device)
        mel = self.log_mel(wave)  # (B, T, 64)
        return {
            "mel_fusion": mel.unsqueeze(1).expand(-1, 4, -1, -1).contiguous(),  # (B, 4, T, 64)
            "longer": torch.zeros(len(wave), 1, dtype=torch.bool, device=self.device),
            "waveform": wave,
        }

    @torch.no_grad()
    def feature_maps(self, waveforms: np.ndarray) -> np.ndarray:
        """waveforms (B, 480000) -> (B, 64, 768) float32."""
        self._maps.clear()
        with autocast(self.device, self.precision):
            self.model.encode_audio(self._audio_input(waveforms), device=self.device)
        pooled_input = self._maps.pop()  # (B, 768, 64)
        return pooled_input.float().permute(0, 2, 1).contiguous().cpu().numpy()

    @torch.no_grad()
    def logits(self, waveforms: np.ndarray) -> np.ndarray:
        """waveforms (C, 480000) -> (C, 25) float32."""
        self._maps.clear()
        with autocast(self.device, self.precision):
            out = self.model.encode_audio(self._audio_input(waveforms), device=self.device)
            embeds = self.model.audio_projection(out["embedding"])
        audio = F.normalize(embeds.float(), dim=-1)
        self._maps.clear()
        return (self.scale * audio @ self.prompts.T).cpu().numpy()
