"""``model: "musicgen"``: a MusicGen checkpoint in Hugging Face format from a folder the user supplies, through
``transformers`` (an optional extra: ``pip install 'cadenza[musicgen]'``), never downloaded.

Copet et al., "Simple and Controllable Music Generation", NeurIPS 2023. The folder
``<models_dir>/musicgen/<name>/`` is what ``save_pretrained`` writes for the model and its processor (e.g. a
copy of facebook/musicgen-small). Longer than one window (``musicgen_window_s``, at most the model's 30 s),
audio is generated in windows, each conditioned on the text and on the last ``musicgen_overlap_s`` of the audio
so far (MusicGen's audio-prompted continuation); only the new part of each window is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.engines.base import EngineInputError, cached_model

REQUIRED_FILES = ("config.json", "generation_config.json", "preprocessor_config.json|processor_config.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")


def folder(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / "musicgen" / name


def missing_files(path: Path) -> list[str]:
    """Files a MusicGen folder lacks (alternatives joined by '|'); empty when it looks complete."""
    missing = [f for f in REQUIRED_FILES if not any((path / alt).is_file() for alt in f.split("|"))]
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        missing.append("|".join(WEIGHT_FILES))
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        missing.append("|".join(TOKENIZER_FILES))
    return [str(path / f) for f in missing]


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("transformers") is not None


def check(models_dir: Path, name: str) -> None:
    """Raise EngineInputError (422) when transformers is missing or the folder is incomplete, naming what to do."""
    if not available():
        raise EngineInputError("model 'musicgen' needs transformers: pip install 'cadenza[musicgen]'")
    path = folder(models_dir, name)
    missing = missing_files(path)
    if missing:
        raise EngineInputError(
            f"MusicGen model {name!r} is not in {path}: missing {', '.join(missing)}. Put a Hugging Face MusicGen "
            "checkpoint there (model.save_pretrained and processor.save_pretrained write these files)."
        )


def load(models_dir: Path, name: str, ctx: Any) -> tuple[Any, Any]:
    """(model in eval mode, processor) from the folder, cached in ``ctx.cache``. Raises EngineInputError."""
    check(models_dir, name)

    def read() -> tuple[Any, Any]:
        from transformers import MusicgenForConditionalGeneration, MusicgenProcessor

        path = folder(models_dir, name)
        model = MusicgenForConditionalGeneration.from_pretrained(path, local_files_only=True)
        processor = MusicgenProcessor.from_pretrained(path, local_files_only=True)
        return model.eval(), processor

    return cached_model("track", f"musicgen:{name}", ctx, read)


def generate(
    model: Any,
    processor: Any,
    prompt: str,
    duration_s: float,
    seed: int,
    window_s: float,
    overlap_s: float,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, int]:
    """``(samples,)`` float32 mono audio of ``duration_s`` at the model's sample rate, and that rate.
    Deterministic for a seed on one machine (``torch.manual_seed`` before each window)."""
    import torch

    rate = int(model.config.audio_encoder.sampling_rate)
    frame_rate = float(model.config.audio_encoder.frame_rate)
    limit_s = (model.config.decoder.max_position_embeddings - 8) / frame_rate
    window_s = min(window_s, limit_s)
    overlap_s = min(overlap_s, window_s / 2)
    total = int(round(duration_s * rate))
    audio = np.zeros(0, dtype=np.float32)
    index = 0
    while audio.size < total:
        torch.manual_seed(seed + index)
        context = audio[-int(overlap_s * rate) :] if audio.size and overlap_s > 0 else None
        new_s = min(window_s - (overlap_s if context is not None else 0.0), (total - audio.size) / rate)
        context_frames = 0 if context is None else int(np.ceil(context.size / rate * frame_rate))
        tokens = int(np.ceil(new_s * frame_rate)) + context_frames + 1
        if context is None:
            inputs = processor(text=[prompt], padding=True, return_tensors="pt")
        else:
            inputs = processor(text=[prompt], audio=context, sampling_rate=rate, padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, do_sample=True, max_new_tokens=tokens)
        piece = out[0, 0].float().cpu().numpy()
        if context is not None:
            piece = piece[context.size :]  # the continuation, after the prompt audio
        if piece.size == 0:
            raise EngineInputError("MusicGen returned no audio for this window")
        audio = np.concatenate([audio, piece.astype(np.float32)])
        index += 1
        if progress is not None:
            progress(100.0 * min(1.0, audio.size / total))
    return audio[:total], rate
