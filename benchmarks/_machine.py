"""The machine a benchmark ran on, for its printed summary and its ``results/*.json``, and writing those files.

Scripts run as ``python benchmarks/X.py`` (so this folder is on ``sys.path``) and import it as
``from _machine import describe_machine``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()`` or ``"unknown"``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe_machine(**extra: object) -> dict[str, object]:
    """CPU model, logical and usable cores (``os.sched_getaffinity``), 1-minute load average, Python,
    platform and, if the script has imported torch, its version and intra-op thread count; then ``extra``.

    Call it after the script has set its thread counts, so ``torch_threads`` is the one measured with.
    """
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return {**info, **extra}


def write_results(path: Path, payload: dict) -> None:
    """Write a benchmark's results as indented JSON (creating ``results/``) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
