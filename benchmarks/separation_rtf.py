"""Real-time factor (processing time / audio duration) and peak memory of the separation engine.

Run: ``.venv/bin/python benchmarks/separation_rtf.py [--seconds 180] [--repeats 3]``
Writes ``benchmarks/results/separation_rtf.json`` and prints medians, ratios and the machine.

Wall-clock RTF depends on what else runs on the machine; CPU-time RTF (``time.process_time``, one
thread) is what one free core takes. One thread everywhere (OMP/MKL/OpenBLAS/numba env vars set
before numpy is imported, ``torch.set_num_threads(1)``), so the figures are per core. Measured:
- ``hpss_model``: ``hpss.separate_block`` on 30 s blocks of the song held in memory (the algorithm);
- ``hpss_engine``: the whole job (``run``): read WAV, separate in blocks, write float temporaries,
  encode PCM_16 WAV stems; peak memory by tracemalloc (Python + NumPy allocations) and the
  process's max RSS growth (``resource.getrusage``);
- ``demucs_tiny``: the test suite's tiny random HTDemucs through ``run`` on 30 s (plumbing cost only).
Expected htdemucs figure on CPU, not measured here (no weights on this machine): the Demucs README
says separation takes roughly 1.5x the track duration on CPU (RTF ~1.5), much less on a GPU.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from _machine import describe_machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "separation_rtf.json"
RATE = 44100


def make_song(path: Path, seconds: float, seed: int = 0) -> None:
    """A stereo 44.1 kHz PCM_16 test song: chord tones with vibrato, a bass line and noise/kick hits
    at 120 BPM, written in 10 s pieces (deterministic)."""
    rng = np.random.default_rng(seed)
    kick = np.sin(2 * np.pi * 60 * np.arange(4410) / RATE) * np.exp(-np.arange(4410) / 800)
    snare = rng.standard_normal(3000) * np.exp(-np.arange(3000) / 500)
    with sf.SoundFile(str(path), "w", RATE, 2, subtype="PCM_16") as out:
        for piece in range(int(np.ceil(seconds / 10))):
            n = int(min(10.0, seconds - piece * 10) * RATE)
            t = (np.arange(n) + piece * 10 * RATE) / RATE
            chord = sum(0.08 * np.sin(2 * np.pi * f * t + 0.3 * np.sin(2 * np.pi * 5 * t)) for f in (261.6, 329.6, 392))
            bass = 0.15 * np.sin(2 * np.pi * 65.4 * (1 + (t % 2 > 1) * 0.5) * t)
            hits = np.zeros(n)
            for beat in range(int(n / (RATE / 2))):
                start = int(beat * RATE / 2)
                sound = kick if beat % 2 == 0 else 0.4 * snare
                end = min(n, start + sound.size)
                hits[start:end] += sound[: end - start]
            out.write(np.stack([chord + bass + 0.5 * hits, chord + bass + 0.45 * hits], axis=1).astype(np.float32))


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_hpss_model(song: Path, repeats: int) -> dict:
    from cadenza.engines.separation import hpss
    from cadenza.music import audio

    x = audio.read_audio(song)
    duration = x.shape[1] / RATE
    hpss.separate_block(x[:, : RATE * 2])  # warm-up (imports, FFT plans)
    block = 30 * RATE
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for s in range(0, x.shape[1], block):
            hpss.separate_block(x[:, s : s + block])
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return _summary(times, cpu, duration)


def _summary(times: list[float], cpu: list[float], duration: float) -> dict:
    """Wall-clock and CPU-time medians; CPU time is what one free core would take (1 thread)."""
    return {
        "median_s": statistics.median(times),
        "rtf": statistics.median(times) / duration,
        "cpu_median_s": statistics.median(cpu),
        "rtf_cpu": statistics.median(cpu) / duration,
        "runs_s": times,
    }


def bench_engine(song: Path, repeats: int, params: dict, models_dir: Path | None = None) -> dict:
    from cadenza.engines.base import RunContext
    from cadenza.engines.separation import ENGINE, SeparationRequest

    duration = sf.info(str(song)).duration
    times, cpu, traced, rss = [], [], [], []
    cache: dict = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            ctx = RunContext(
                workdir=Path(tmp) / "job", models_dir=models_dir or Path(tmp), cache=cache, input_path=song
            )
            rss_before = _maxrss_mb()
            tracemalloc.start()
            start, start_cpu = time.perf_counter(), time.process_time()
            ENGINE.resolve("run")(SeparationRequest(**params), lambda p, s="": None, ctx)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            traced.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
            rss.append(_maxrss_mb() - rss_before)
    return _summary(times, cpu, duration) | {"peak_traced_mb": max(traced), "max_rss_growth_mb": max(rss)}


def tiny_demucs(folder: Path) -> None:
    """The tests' tiny random HTDemucs, saved as a local model folder (``<folder>/demucs/tiny.yaml``)."""
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state, save_with_checksum

    (folder / "demucs").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HTDemucs(
            sources=["drums", "bass", "other", "vocals"],
            channels=8,
            depth=2,
            nfft=512,
            t_layers=1,
            t_heads=1,
            segment=1,
            dconv_comp=4,
        )
    args, kwargs = model._init_args_kwargs
    package = {"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": get_state(model, None, half=False)}
    save_with_checksum(package, folder / "demucs" / "tinysig0.th")
    (folder / "demucs" / "tiny.yaml").write_text("models: ['tinysig0']\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-demucs", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "song.wav"
        make_song(song, args.seconds)
        results: dict = {"audio": {"duration_s": args.seconds, "sample_rate": RATE, "channels": 2}}
        results["hpss_model"] = bench_hpss_model(song, args.repeats)
        results["hpss_engine"] = bench_engine(song, args.repeats, {"model": "hpss"})
        if not args.skip_demucs:
            models = Path(tmp) / "models"
            tiny_demucs(models)
            excerpt = Path(tmp) / "excerpt.wav"
            sf.write(str(excerpt), sf.read(str(song), frames=30 * RATE)[0], RATE, subtype="PCM_16")
            results["demucs_tiny"] = bench_engine(excerpt, args.repeats, {"model": "tiny", "shifts": 0}, models)
            results["demucs_tiny"]["note"] = "random 25k-parameter HTDemucs: plumbing cost, not htdemucs speed"
    results["htdemucs_expected_cpu_rtf"] = {
        "rtf": 1.5,
        "source": "Demucs README (facebookresearch/demucs): ~1.5x duration on CPU",
    }
    results["target_hpss_rtf"] = 0.05
    results["threads"] = 1
    results["machine"] = describe_machine()
    results["command"] = "python benchmarks/separation_rtf.py " + " ".join(sys.argv[1:])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for key in ("hpss_model", "hpss_engine", "demucs_tiny"):
        if key in results:
            r = results[key]
            extra = f", peak traced {r['peak_traced_mb']:.0f} MB" if "peak_traced_mb" in r else ""
            print(f"{key:12s} median {r['median_s']:.2f} s  RTF wall {r['rtf']:.4f}  RTF cpu {r['rtf_cpu']:.4f}{extra}")
    print(f"target hpss RTF <= 0.05 (1 thread); machine {results['machine']}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
