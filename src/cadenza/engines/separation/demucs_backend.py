"""Demucs models from a local folder ``<models_dir>/demucs`` (never downloaded at run time).

The folder holds what ``demucs.pretrained.get_model(name, repo=folder)`` expects: checkpoints named
``<signature>-<sha256 prefix>.th`` (or ``<signature>.th``) and bag files ``<name>.yaml`` listing
signatures. The names of the official files are read from the installed package
(``demucs/remote/files.txt`` and ``demucs/remote/<name>.yaml``). Demucs: Défossez, "Hybrid Spectrogram
and Waveform Source Separation", ISMIR MDX workshop 2021; Rouard, Massa & Défossez, "Hybrid
Transformers for Music Source Separation", ICASSP 2023. Code and weights: MIT licence.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import random
import zipfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cadenza.engines.base import EngineInputError, ModelInfo

DEMUCS_ROOT_URL = "https://dl.fbaipublicfiles.com/demucs/"
# Well-known models: ranked best first (MUSDB18-HQ test SDR from the Demucs README), with data sources.
KNOWN_MODELS: dict[str, str] = {
    "htdemucs_ft": "fine-tuned Hybrid Transformer Demucs (bag of 4), ~9.2 dB SDR on MUSDB18-HQ; 4x slower",
    "htdemucs": "Hybrid Transformer Demucs v4, ~9.0 dB SDR on MUSDB18-HQ",
    "htdemucs_6s": "Hybrid Transformer Demucs, 6 sources (adds guitar, piano; piano is weak)",
    "mdx_extra": "Hybrid Demucs v3 bag (MDX 2021 track B), ~7.9 dB SDR on MUSDB18-HQ",
}
DATA_SOURCE = "MUSDB18-HQ plus 800 internal songs (htdemucs*) / MUSDB18 plus extra data (mdx_extra); Meta AI"


def folder(models_dir: Path) -> Path:
    return Path(models_dir) / "demucs"


def _package_remote() -> Path | None:
    spec = importlib.util.find_spec("demucs")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "remote"


@cache
def remote_files() -> dict[str, str]:
    """Official checkpoint file names by signature, with their download path, from the installed
    package's ``remote/files.txt`` (``{sig: "<root>/<sig>-<checksum>.th"}``); empty without demucs."""
    remote = _package_remote()
    if remote is None or not (remote / "files.txt").exists():
        return {}
    root, out = "", {}
    for line in (remote / "files.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
        else:
            out[line.split("-", 1)[0]] = root + line
    return out


def _bag_signatures(yaml_path: Path) -> list[str]:
    bag = yaml.safe_load(yaml_path.read_text()) or {}
    models = bag.get("models") if isinstance(bag, dict) else None
    if not isinstance(models, list) or not models:
        raise ValueError(f"{yaml_path.name}: not a Demucs bag (no 'models' list)")
    return [str(m) for m in models]


def _checkpoints(dirpath: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    if dirpath.is_dir():
        for f in sorted(dirpath.glob("*.th")):
            out[f.stem.rsplit("-", 1)[0] if "-" in f.stem else f.stem] = f
    return out


def list_models(models_dir: Path) -> list[ModelInfo]:
    """Demucs models present in ``<models_dir>/demucs`` (bags whose checkpoints all exist, and
    standalone checkpoints), then the well-known models that are missing, with the exact files
    to add (relative to ``models_dir``). Cheap: reads file names and small YAML files only."""
    d = folder(models_dir)
    ckpts = _checkpoints(d)
    infos: list[ModelInfo] = []
    in_bags: set[str] = set()
    present_names: set[str] = set()
    for yaml_path in sorted(d.glob("*.yaml")) if d.is_dir() else []:
        try:
            sigs = _bag_signatures(yaml_path)
        except (ValueError, yaml.YAMLError):
            continue
        missing = [s for s in sigs if s not in ckpts]
        name = yaml_path.stem
        present = not missing
        if present:
            in_bags.update(sigs)
            present_names.add(name)
        infos.append(
            ModelInfo(
                name=name,
                engine="separation",
                version="demucs-4",
                description=KNOWN_MODELS.get(name, f"Demucs bag of {len(sigs)} model(s) from {yaml_path.name}"),
                licence="MIT",
                data_source=DATA_SOURCE if name in KNOWN_MODELS else "user-supplied Demucs checkpoint(s)",
                size_bytes=sum(ckpts[s].stat().st_size for s in sigs if s in ckpts),
                weights_present=present,
                missing_files=[f"demucs/{remote_files().get(s, s + '.th').split('/')[-1]}" for s in missing],
                path=str(d),
            )
        )
    for sig, path in ckpts.items():
        if sig in in_bags or sig in present_names:
            continue
        present_names.add(sig)
        infos.append(
            ModelInfo(
                name=sig,
                engine="separation",
                version="demucs-4",
                description=f"single Demucs checkpoint {path.name}",
                licence="MIT" if sig in remote_files() else "see the checkpoint's source",
                data_source=DATA_SOURCE if sig in remote_files() else "user-supplied Demucs checkpoint",
                size_bytes=path.stat().st_size,
                weights_present=True,
                path=str(path),
            )
        )
    listed = {i.name for i in infos}
    for name, description in KNOWN_MODELS.items():
        if name not in listed:
            infos.append(
                ModelInfo(
                    name=name,
                    engine="separation",
                    version="demucs-4",
                    description=description,
                    licence="MIT",
                    data_source=DATA_SOURCE,
                    size_bytes=None,
                    weights_present=False,
                    missing_files=missing_files(name),
                    path=str(d),
                )
            )
    return infos


def missing_files(name: str) -> list[str]:
    """Files (relative to ``models_dir``) a well-known model needs: its bag YAML (copy it from the
    installed package's ``demucs/remote/<name>.yaml``) and each checkpoint, with its download URL."""
    remote = _package_remote()
    if remote is None or not (remote / f"{name}.yaml").exists():
        return [f"demucs/{name}.yaml"]
    files = [f"demucs/{name}.yaml (copy of demucs/remote/{name}.yaml in the installed demucs package)"]
    for sig in _bag_signatures(remote / f"{name}.yaml"):
        rel = remote_files().get(sig, f"{sig}.th")
        files.append(f"demucs/{rel.split('/')[-1]} (from {DEMUCS_ROOT_URL}{rel})")
    return files


def _model_files(models_dir: Path, name: str) -> list[Path]:
    d = folder(models_dir)
    ckpts = _checkpoints(d)
    bag = d / f"{name}.yaml"
    if bag.exists():
        return [ckpts[s] for s in _bag_signatures(bag)]
    return [ckpts[name]]


_SOURCES: dict[tuple[str, int, int], list[str]] = {}


def sources(models_dir: Path, name: str) -> list[str]:
    """Source names of a present model, read from its (first) checkpoint; cached per file version.
    Zip-format checkpoints (all official ones) are memory-mapped, so only the pickled header is read."""
    path = _model_files(models_dir, name)[0]
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _SOURCES:
        import torch

        package = torch.load(str(path), map_location="cpu", weights_only=False, mmap=zipfile.is_zipfile(path))
        bound = inspect.signature(package["klass"]).bind_partial(*package["args"], **package["kwargs"])
        _SOURCES[key] = list(bound.arguments["sources"])
    return _SOURCES[key]


def load(models_dir: Path, name: str) -> Any:
    """Load model ``name`` from ``<models_dir>/demucs`` with ``demucs.pretrained.get_model(name, repo=...)``
    (always a local repo, so nothing is downloaded). Raises EngineInputError if it cannot be loaded."""
    from demucs.pretrained import ModelLoadingError, get_model

    d = folder(models_dir)
    if not d.is_dir():
        raise EngineInputError(f"no Demucs model folder at {d}")
    try:
        model = get_model(name, repo=d)
    except (ModelLoadingError, KeyError, OSError, RuntimeError) as exc:
        raise EngineInputError(f"cannot load Demucs model {name!r} from {d}: {exc}") from exc
    model.eval()
    return model


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` if available else ``cpu``; ``cuda[:N]`` without that GPU -> EngineInputError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if not torch.cuda.is_available():
            raise EngineInputError(f"device {device!r} requested but no CUDA GPU is available (use 'cpu' or 'auto')")
        if index >= torch.cuda.device_count():
            raise EngineInputError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return device


def make_block_fn(
    model: Any,
    *,
    mean: float,
    std: float,
    shifts: int,
    overlap: float,
    segment_s: float | None,
    device: str,
    seed: int,
) -> Callable[[np.ndarray, Callable[[float], None]], np.ndarray]:
    """Return ``block_fn(x, sub_progress)`` running ``demucs.apply.apply_model`` on one block.

    ``x``: ``(channels, n)`` float32 at ``model.samplerate``, mono or stereo (mono is fed as two equal
    channels and the stems averaged back to mono). Input normalised by the whole track's mean/std as
    ``demucs.separate`` does. ``sub_progress`` is called at the end of every Demucs segment via
    apply_model's ``callback``; a JobCancelled raised there stops the run.
    """
    import torch
    from demucs.apply import apply_model

    members = list(getattr(model, "models", [model]))
    models = len(members)
    # HTDemucs models cannot run segments longer than they were trained on; other Demucs models can
    # (BagOfModels.max_allowed_segment is then infinite) and default to their own ``segment``.
    max_segment = float(getattr(model, "max_allowed_segment", getattr(model, "segment", math.inf)) or math.inf)
    if segment_s is not None and segment_s > max_segment:
        raise EngineInputError(f"segment_s must be <= {max_segment:.2f} s for this model")
    segment = segment_s or (max_segment if math.isfinite(max_segment) else None)
    own_segment = float(segment or getattr(members[0], "segment", 10.0))
    block_index = [0]

    def block_fn(x: np.ndarray, sub_progress: Callable[[float], None]) -> np.ndarray:
        channels, n = x.shape
        mix = torch.from_numpy(np.ascontiguousarray(x))
        if channels == 1:
            mix = mix.expand(2, n)
        mix = (mix - mean) / (std + 1e-8)
        seg_len = int(own_segment * model.samplerate)
        stride = max(1, int((1 - overlap) * seg_len))
        extra = int(0.5 * model.samplerate) if shifts else 0
        expected = models * max(1, shifts) * max(1, math.ceil((n + extra) / stride))
        done = [0]

        def callback(d: dict) -> None:
            if d.get("state") == "end":
                done[0] += 1
                sub_progress(min(100.0, 100.0 * done[0] / expected))

        # apply_model draws its random time shifts from the global ``random`` module (the only
        # randomness in Demucs inference): seed it per block, then give the process its state back.
        rng_state = random.getstate()
        random.seed(seed * 1_000_003 + block_index[0])
        block_index[0] += 1
        try:
            with torch.inference_mode():
                out = apply_model(
                    model,
                    mix[None],
                    shifts=shifts,
                    split=True,
                    overlap=overlap,
                    segment=segment,
                    device=device,
                    progress=False,
                    callback=callback,
                )[0]
        finally:
            random.setstate(rng_state)
        out = (out * (std + 1e-8) + mean).float().cpu()
        if channels == 1:
            out = out.mean(dim=1, keepdim=True)
        return out.numpy()

    return block_fn
