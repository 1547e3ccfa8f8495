"""Fixtures for the separation tests: deterministic test signals and a tiny local Demucs model folder."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cadenza.engines.base import JobCancelled, RunContext

TINY_SOURCES = ["drums", "bass", "other", "vocals"]


def make_mix(seconds: float, sample_rate: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A test song ``(channels, samples)`` float32: two sustained tones (harmonic) plus short decaying
    noise bursts every 0.25 s (percussive), peak about -3 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    tones = 0.2 * np.sin(2 * np.pi * 220.0 * t) + 0.15 * np.sin(2 * np.pi * 329.63 * t)
    hits = np.zeros(n)
    burst = rng.standard_normal(int(0.03 * sample_rate)) * np.exp(-np.linspace(0, 8, int(0.03 * sample_rate)))
    for start in range(0, n - burst.size, int(0.25 * sample_rate)):
        hits[start : start + burst.size] += 0.35 * burst
    mix = np.stack([tones + hits * (0.8 + 0.2 * c) for c in range(channels)])
    return (0.7 * mix / np.max(np.abs(mix))).astype(np.float32)


@pytest.fixture
def mix_factory() -> Callable[..., np.ndarray]:
    return make_mix


@pytest.fixture
def write_song(tmp_path: Path) -> Callable[..., Path]:
    """Write ``make_mix(...)`` to ``tmp_path/name`` with soundfile (format/subtype as given)."""

    def write(name: str = "song.wav", seconds: float = 3.0, sample_rate: int = 44100, channels: int = 2, **kw) -> Path:
        path = tmp_path / name
        sf.write(str(path), make_mix(seconds, sample_rate, channels).T, sample_rate, **kw)
        return path

    return write


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., RunContext]:
    def make(input_path: Path, models_dir: Path | None = None, cache: dict | None = None) -> RunContext:
        return RunContext(
            workdir=tmp_path / "job",
            models_dir=models_dir or tmp_path / "no-models",
            cache={} if cache is None else cache,
            device="cpu",
            input_path=input_path,
        )

    return make


class Recorder:
    """A progress callback that records calls and raises JobCancelled on call number ``cancel_at``."""

    def __init__(self, cancel_at: int | None = None) -> None:
        self.calls: list[tuple[float, str]] = []
        self.cancel_at = cancel_at

    def __call__(self, percent: float, stage: str = "") -> None:
        self.calls.append((percent, stage))
        if self.cancel_at is not None and len(self.calls) >= self.cancel_at:
            raise JobCancelled()


@pytest.fixture
def recorder() -> type[Recorder]:
    return Recorder


@pytest.fixture(scope="session")
def tiny_demucs_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``models_dir`` whose ``demucs/`` folder holds a tiny randomly initialised HTDemucs exactly as
    users install real ones: a checkpoint ``<sig>-<sha256[:8]>.th`` in Demucs' package format
    (klass/args/kwargs/state, written by ``demucs.states.save_with_checksum``) and a bag ``tiny.yaml``."""
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state, save_with_checksum

    root = tmp_path_factory.mktemp("models")
    folder = root / "demucs"
    folder.mkdir()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HTDemucs(
            sources=TINY_SOURCES, channels=8, depth=2, nfft=512, t_layers=1, t_heads=1, segment=1, dconv_comp=4
        )
    args, kwargs = model._init_args_kwargs
    package = {"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": get_state(model, None, half=False)}
    save_with_checksum(package, folder / "tinysig0.th")
    (folder / "tiny.yaml").write_text("models: ['tinysig0']\n")
    return root
